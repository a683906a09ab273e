"""The read side behind the command line: sends with their states, orphans, one send, status.

States are judged afresh at the ``as_of`` time of each query with the same rules that
reconciliation stores, so a query never shows a send as pending after its deadline just because no
pass has run since.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlmodel import Session, col

from config.settings import ProjectView
from monitor.models import Evidence, EvidenceKind, MailboxCursor, MessageClass, StoredMessage
from reconcile.models import MatchCandidate, ReconcileRun, Send, SendState
from reconcile.reconciliation import evidence_time
from reconcile.states import state_expression


@dataclass(frozen=True)
class SendView:
    """One send and recipient as a query shows it."""

    project: str
    send_id: int
    notification_type: str | None
    negocio: str | None
    inmueble: str | None
    client: str | None
    recipient: str
    subject: str
    sent_at: datetime
    lleida_copied: bool | None
    state: SendState
    deadline: datetime
    match_rule: str | None
    candidates: str | None
    evidence_id: int | None
    certificate_id: str | None
    delivered_at: datetime | None
    smtp_code: str | None
    smtp_detail: str | None
    evidence_reason: str | None
    trust_reasons: str | None = None


def _send_query(project: ProjectView, as_of: datetime):  # type: ignore[no-untyped-def]
    # The label must differ from send.state: SQLite resolves a name in WHERE to the column.
    judged = state_expression(as_of, project.missing_after).label("judged_state")
    return (
        select(
            Send,
            judged,
            col(Evidence.certificate_id),
            col(Evidence.delivered_at),
            col(Evidence.smtp_code),
            col(Evidence.smtp_detail),
            col(Evidence.reason),
            col(Evidence.trust_reasons),
        )
        .outerjoin(Evidence, col(Evidence.id) == col(Send.evidence_id))
        .where(col(Send.project) == project.code, col(Send.sent_at) <= as_of)
    )


def list_sends(
    session: Session,
    project: ProjectView,
    as_of: datetime,
    states: frozenset[SendState] | None = None,
    exclude_states: frozenset[SendState] | None = None,
    *,
    where: Sequence[ColumnElement[bool]] = (),
) -> Iterator[SendView]:
    """Yield the project's sends logged up to ``as_of``, oldest first, with their state then.

    ``where`` adds conditions on the ``send`` table, such as a time range.
    """
    query = _send_query(project, as_of).where(*where)
    judged = state_expression(as_of, project.missing_after)
    if states:
        query = query.where(judged.in_([s.value for s in states]))
    if exclude_states:
        query = query.where(judged.not_in([s.value for s in exclude_states]))
    query = query.order_by(col(Send.sent_at), col(Send.id)).execution_options(yield_per=1000)

    for row in session.execute(query):
        yield _send_view(row, project)


def get_send(
    session: Session, project: ProjectView, send_id: int, as_of: datetime
) -> SendView | None:
    """Return one send of the project, or None when the project has no send with that id."""
    row = session.execute(_send_query(project, as_of).where(col(Send.id) == send_id)).first()
    return _send_view(row, project) if row is not None else None


def find_send_project(session: Session, send_id: int) -> str | None:
    """Return the code of the project that owns send ``send_id``."""
    return session.execute(
        select(col(Send.project)).where(col(Send.id) == send_id)
    ).scalar_one_or_none()


def _send_view(row, project: ProjectView) -> SendView:  # type: ignore[no-untyped-def]
    send: Send = row[0]
    assert send.id is not None
    return SendView(
        project=send.project,
        send_id=send.id,
        notification_type=send.notification_type,
        negocio=send.negocio,
        inmueble=send.inmueble,
        client=send.client,
        recipient=send.recipient,
        subject=send.subject,
        sent_at=send.sent_at,
        lleida_copied=send.lleida_copied,
        state=SendState(row.judged_state),
        deadline=send.sent_at + project.missing_after,
        match_rule=send.match_rule,
        candidates=send.candidates,
        evidence_id=send.evidence_id,
        certificate_id=row.certificate_id,
        delivered_at=row.delivered_at,
        smtp_code=row.smtp_code,
        smtp_detail=row.smtp_detail,
        evidence_reason=row.reason,
        trust_reasons=row.trust_reasons,
    )


@dataclass(frozen=True)
class OrphanView:
    """Evidence that no send claims after its own deadline."""

    project: str
    evidence_id: int
    kind: EvidenceKind
    certificate_id: str | None
    recipient: str | None
    subject: str | None
    time: datetime
    deadline: datetime
    message_pk: int


def _unclaimed() -> ColumnElement[bool]:
    linked = exists().where(col(Send.evidence_id) == col(Evidence.id))
    candidate = exists().where(col(MatchCandidate.evidence_id) == col(Evidence.id))
    return and_(~linked, ~candidate)


def list_orphans(session: Session, project: ProjectView, as_of: datetime) -> Iterator[OrphanView]:
    """Yield the project's evidence that no send claims and whose deadline has passed."""
    time = evidence_time().label("time")
    query = (
        select(Evidence, time)
        .join(StoredMessage, col(StoredMessage.id) == col(Evidence.message_pk))
        .where(col(Evidence.project) == project.code, _unclaimed())
        .where(evidence_time() <= as_of - project.orphan_after)
        .order_by(time, col(Evidence.id))
    )
    for evidence, evidence_at in session.execute(query):
        yield OrphanView(
            project=evidence.project,
            evidence_id=evidence.id,
            kind=EvidenceKind(evidence.kind),
            certificate_id=evidence.certificate_id,
            recipient=evidence.recipient,
            subject=evidence.subject,
            time=evidence_at,
            deadline=evidence_at + project.orphan_after,
            message_pk=evidence.message_pk,
        )


def get_evidence(session: Session, evidence_id: int) -> tuple[Evidence, StoredMessage] | None:
    """Return a piece of evidence with the message it came in."""
    row = session.execute(
        select(Evidence, StoredMessage)
        .join(StoredMessage, col(StoredMessage.id) == col(Evidence.message_pk))
        .where(col(Evidence.id) == evidence_id)
    ).first()
    return (row[0], row[1]) if row is not None else None


@dataclass(frozen=True)
class ProjectStatus:
    """Health and counts of one project for ``acuse status``."""

    project: str
    messages: int
    evidence: int
    unrelated: int
    quarantined: int
    last_message_at: datetime | None
    cursors: list[MailboxCursor]
    last_reconcile: ReconcileRun | None
    states: dict[SendState, int]
    orphans: int


def project_status(session: Session, project: ProjectView, as_of: datetime) -> ProjectStatus:
    """Collect the figures ``acuse status`` shows for one project."""
    classes = dict(
        session.execute(
            select(col(StoredMessage.classification), func.count())
            .where(col(StoredMessage.project) == project.code)
            .group_by(col(StoredMessage.classification))
        ).all()
    )
    state = state_expression(as_of, project.missing_after)
    states = {
        SendState(value): total
        for value, total in session.execute(
            select(state, func.count())
            .where(col(Send.project) == project.code, col(Send.sent_at) <= as_of)
            .group_by(state)
        ).all()
    }
    evidence_count = session.execute(
        select(func.count()).select_from(Evidence).where(col(Evidence.project) == project.code)
    ).scalar_one()
    orphans = session.execute(
        select(func.count())
        .select_from(Evidence)
        .join(StoredMessage, col(StoredMessage.id) == col(Evidence.message_pk))
        .where(
            col(Evidence.project) == project.code,
            _unclaimed(),
            evidence_time() <= as_of - project.orphan_after,
        )
    ).scalar_one()
    last_message_at = session.execute(
        select(func.max(col(StoredMessage.stored_at))).where(
            col(StoredMessage.project) == project.code
        )
    ).scalar_one()
    cursors = list(
        session.scalars(
            select(MailboxCursor).where(col(MailboxCursor.project) == project.code)
        ).all()
    )
    return ProjectStatus(
        project=project.code,
        messages=sum(classes.values()),
        evidence=evidence_count,
        unrelated=classes.get(MessageClass.UNRELATED, 0),
        quarantined=classes.get(MessageClass.QUARANTINED, 0),
        last_message_at=last_message_at,
        cursors=cursors,
        last_reconcile=session.get(ReconcileRun, project.code),
        states=states,
        orphans=orphans,
    )


def count_sends_after(session: Session, project: ProjectView, as_of: datetime) -> int:
    """Count the project's sends dated after ``as_of``, which every listing up to then leaves out.

    The send-log import rejects dates more than a day after the import, so these are sends
    logged in the last day with a clock ahead of acuse's, or sends stored before that check.
    """
    statement = (
        select(func.count())
        .select_from(Send)
        .where(col(Send.project) == project.code, col(Send.sent_at) > as_of)
    )
    return int(session.execute(statement).scalar_one())
