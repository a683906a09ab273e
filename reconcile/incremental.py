"""What lets a reconciliation pass match only what changed since the previous pass.

Matching is a function of the project's sends, its evidence (and the message each came from)
and the project's matching rules. Sends are only ever added. Evidence is added by ingest with
a new message, and changed or deleted only by reprocessing, which stamps an older message's
``read_at`` with the time. So a pass records ``MatchInputs`` (the highest ids of sends,
evidence and messages, the latest ``read_at``, a digest of the rules), and the next pass
compares:

- nothing changed: matching is skipped, and only the deadline moves (pending and missing sends);
- only rows were added (no message up to the recorded highest id was read again, same rules):
  the recipients of the sends and evidence added are judged again, because each recipient is
  matched apart from the others (notices that name no recipient widen that set, see
  ``reconcile.reconciliation.rejudged_recipients``);
- anything else: a full pass.

NOTE: on PostgreSQL, a reprocess that commits while a pass reads its inputs, with an ingest
committed in between, can leave a ``read_at`` below the recorded one; that pass then misses it
until the next full pass (after a rules change or another reprocess).
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from sqlalchemy import Select, and_, func, or_, select, union, update
from sqlmodel import Session, col

from config.settings import ProjectView
from monitor.models import Evidence, StoredMessage
from reconcile.models import Send, SendState
from reconcile.states import state_expression

_FORMAT = "v2"
# States that only a new or changed link can leave.
FINAL_STATES = (SendState.CERTIFIED, SendState.DELIVERY_FAILED, SendState.REJECTED)


class PassScope(StrEnum):
    """How much of a project a reconciliation pass has to match."""

    NOTHING = "nothing"
    ADDED = "added"
    FULL = "full"


@dataclass(frozen=True)
class MatchInputs:
    """The state of everything matching reads, as stored in ``reconcile_run.inputs``.

    Highest ids without row counts suffice, because sends are never deleted and evidence is
    deleted only by a reprocess, which ``last_read`` records. Each value is one index lookup,
    where a count would read the whole index.
    """

    last_send_id: int
    last_evidence_id: int
    last_message_id: int
    last_read: datetime | None
    rules: str

    def encode(self) -> str:
        numbers = (self.last_send_id, self.last_evidence_id, self.last_message_id)
        last_read = "" if self.last_read is None else self.last_read.isoformat()
        return ";".join([_FORMAT, *map(str, numbers), last_read, self.rules])

    @classmethod
    def decode(cls, text: str | None) -> Self | None:
        """Read an encoded value; None for a missing or unknown one."""
        parts = (text or "").split(";")
        if len(parts) != 6 or parts[0] != _FORMAT:
            return None
        try:
            last_send_id, last_evidence_id, last_message_id = (int(part) for part in parts[1:4])
            last_read = datetime.fromisoformat(parts[4]) if parts[4] else None
        except ValueError:
            return None
        return cls(last_send_id, last_evidence_id, last_message_id, last_read, parts[5])


def pass_scope(
    session: Session, project: str, inputs: MatchInputs, earlier: MatchInputs | None
) -> PassScope:
    """How much a pass must match, given its inputs and those of the previous pass."""
    if earlier is None or earlier.rules != inputs.rules:
        return PassScope.FULL
    if inputs == earlier:
        return PassScope.NOTHING
    if earlier.last_read is not None:
        read_again = select(col(StoredMessage.id)).where(
            col(StoredMessage.project) == project,
            col(StoredMessage.read_at) > earlier.last_read,
            col(StoredMessage.id) <= earlier.last_message_id,
        )
        if session.execute(read_again.limit(1)).first() is not None:
            return PassScope.FULL
    return PassScope.ADDED


def match_inputs(session: Session, project: ProjectView) -> MatchInputs:
    """Read the project's current MatchInputs.

    Each maximum is a query of its own, because SQLite and PostgreSQL read a lone ``max()``
    from the end of an index, while two in one query scan every row of the project.
    """
    code = project.code

    def highest(column: Any, project_column: Any) -> Any:
        return session.execute(select(func.max(column)).where(project_column == code)).scalar()

    rules = (
        project.match_window_before,
        project.match_window_after,
        project.settings.reference_pattern,
        project.provider.model_dump_json(),
    )
    return MatchInputs(
        last_send_id=int(highest(col(Send.id), col(Send.project)) or 0),
        last_evidence_id=int(highest(col(Evidence.id), col(Evidence.project)) or 0),
        last_message_id=int(highest(col(StoredMessage.id), col(StoredMessage.project)) or 0),
        last_read=highest(col(StoredMessage.read_at), col(StoredMessage.project)),
        rules=hashlib.sha256(repr(rules).encode()).hexdigest()[:32],
    )


def added_recipients(project: str, since: MatchInputs) -> Select[Any]:
    """Select the recipients of the sends and evidence added since the pass of ``since``."""
    new_sends = select(col(Send.recipient)).where(
        col(Send.project) == project, col(Send.id) > since.last_send_id
    )
    new_evidence = select(col(Evidence.recipient)).where(
        col(Evidence.project) == project,
        col(Evidence.id) > since.last_evidence_id,
        col(Evidence.recipient).is_not(None),
    )
    return select(union(new_sends, new_evidence).subquery().c[0])


def update_open_states(
    session: Session, project: ProjectView, as_of: datetime, now: datetime, rejudged: Select[Any]
) -> int:
    """Store the state at ``as_of`` of the sends of the ``rejudged`` recipients and of every
    send not in a final state; return how many changed.

    Only valid when the links of the other recipients' sends did not change since their states
    were stored, which is true unless evidence was reprocessed.
    """
    new_state = state_expression(as_of, project.missing_after)
    changed = session.execute(
        update(Send)
        .where(
            col(Send.project) == project.code,
            or_(col(Send.recipient).in_(rejudged), col(Send.state).not_in(FINAL_STATES)),
            col(Send.state) != new_state,
        )
        .values(state=new_state, state_changed_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(changed, "rowcount", 0) or 0)


def update_deadline_states(
    session: Session, project: ProjectView, as_of: datetime, now: datetime
) -> int:
    """Store the state at ``as_of`` of the sends whose deadline moved past; return how many.

    Only valid when no link changed since the states were stored. Then a pending send past its
    deadline becomes missing, and a missing send before it (an earlier ``as_of``) pending.
    """
    cutoff = as_of - project.missing_after
    state = col(Send.state)
    sent_at = col(Send.sent_at)
    # One statement per state, so each reads a range of the (project, state, sent_at) index
    # where one statement with OR reads the whole project.
    crossings = (
        and_(state == SendState.PENDING, sent_at <= cutoff),
        and_(state == SendState.MISSING, sent_at > cutoff),
    )
    changed = 0
    for crossed in crossings:
        result = session.execute(
            update(Send)
            .where(col(Send.project) == project.code, crossed)
            .values(state=state_expression(as_of, project.missing_after), state_changed_at=now)
            .execution_options(synchronize_session=False)
        )
        changed += int(getattr(result, "rowcount", 0) or 0)
    return changed
