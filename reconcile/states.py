"""The state of one send and recipient, judged from its match and its deadline.

Evidence decides first: matched evidence whose trust verdict is unverified (it failed an
authenticity check under the require policy) makes the send unverified, whatever the evidence
says; any other matched certificate makes it certified, delivery_failed or rejected, whatever
the send log says about the copy to the provider. Without evidence, an
ambiguous match stays ambiguous for review, a send that the log says went out without the
provider in copy is not_copied at once, and any other send is pending until its deadline passes
and missing after.

The rules are one SQL expression, so the stored states that reconciliation writes and the states
that queries compute for another point in time can never disagree.
"""

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, false, func, literal, select
from sqlalchemy.orm import aliased
from sqlmodel import col

from monitor.models import Evidence, EvidenceKind, TrustVerdict
from reconcile.models import Send, SendState

PROBLEM_STATES = frozenset(
    {
        SendState.DELIVERY_FAILED,
        SendState.REJECTED,
        SendState.MISSING,
        SendState.NOT_COPIED,
        SendState.UNVERIFIED,
        SendState.AMBIGUOUS,
    }
)


def state_expression(as_of: datetime, missing_after: timedelta) -> ColumnElement[str]:
    """An SQL expression for the state of each ``send`` row at ``as_of`` (aware)."""
    # An alias keeps the subquery correlated to send only, even in queries that join evidence.
    linked = aliased(Evidence)
    unverified = col(linked.trust_verdict) == TrustVerdict.UNVERIFIED.value
    evidence_state = case(
        (unverified, literal(SendState.UNVERIFIED.value)),
        (col(linked.kind) == EvidenceKind.DELIVERED.value, literal(SendState.CERTIFIED.value)),
        (
            col(linked.kind) == EvidenceKind.DELIVERY_FAILED.value,
            literal(SendState.DELIVERY_FAILED.value),
        ),
        (col(linked.kind) == EvidenceKind.REJECTED.value, literal(SendState.REJECTED.value)),
    )
    linked_state = (
        select(evidence_state)
        .where(col(linked.id) == col(Send.evidence_id))
        .correlate(Send)
        .scalar_subquery()
    )
    deadline_cutoff = as_of - missing_after
    without_evidence = case(
        (col(Send.candidates).is_not(None), literal(SendState.AMBIGUOUS.value)),
        (col(Send.lleida_copied) == false(), literal(SendState.NOT_COPIED.value)),
        (col(Send.sent_at) > deadline_cutoff, literal(SendState.PENDING.value)),
        else_=literal(SendState.MISSING.value),
    )
    return func.coalesce(linked_state, without_evidence)


def failure_detail(
    smtp_code: str | None, smtp_detail: str | None, reason: str | None
) -> str | None:
    """Join the SMTP reply or the provider's reason into one line for display."""
    parts = [part.strip() for part in (smtp_code, smtp_detail, reason) if part and part.strip()]
    if not parts:
        return None
    if len(parts) >= 2 and parts[1].startswith(parts[0]):
        parts = parts[1:]
    return " ".join(parts)
