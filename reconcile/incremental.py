"""The digest that lets a reconciliation pass skip matching when its inputs have not changed.

Matching is a function of the project's sends, its evidence (and the message each came from)
and the project's matching rules. Sends are only ever added. Evidence is added by ingest, and
changed or deleted only by reprocessing, which also stamps its message's ``read_at``. So the
digest of (count and highest id of sends, count and highest id of evidence, latest
``read_at``, rules) changes whenever a full pass could link differently, and a pass that finds
the digest of the previous pass skips matching.

The stored states still depend on the time a pass judges at: without new links only the
deadline moves, so only sends that are pending or missing can change, between those two states.
"""

import hashlib
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlmodel import Session, col

from config.settings import ProjectView
from monitor.models import Evidence, StoredMessage
from reconcile.models import Send, SendState
from reconcile.states import state_expression


def match_inputs(session: Session, project: ProjectView) -> str:
    """Return the digest of everything the project's matching reads.

    The (project, id) and (project, read_at) indexes answer the maximums without a scan.
    """
    code = project.code
    sends = session.execute(
        select(func.count(), func.max(col(Send.id))).where(col(Send.project) == code)
    ).one()
    evidence = session.execute(
        select(func.count(), func.max(col(Evidence.id))).where(col(Evidence.project) == code)
    ).one()
    last_read = session.execute(
        select(func.max(col(StoredMessage.read_at))).where(col(StoredMessage.project) == code)
    ).scalar()
    settings = project.settings
    rules = (
        project.match_window_before,
        project.match_window_after,
        settings.reference_pattern,
        project.provider.model_dump_json(),
    )
    text = repr((tuple(sends), tuple(evidence), last_read, rules))
    return hashlib.sha256(text.encode()).hexdigest()


def update_deadline_states(
    session: Session, project: ProjectView, as_of: datetime, now: datetime
) -> int:
    """Store the state at ``as_of`` of the sends whose deadline moved past; return how many.

    Only valid when no link changed since the states were stored: then a pending send past
    its deadline becomes missing, and a missing send before it (an earlier ``as_of``) pending.
    """
    cutoff = as_of - project.missing_after
    state = col(Send.state)
    sent_at = col(Send.sent_at)
    crossed = or_(
        and_(state == SendState.PENDING, sent_at <= cutoff),
        and_(state == SendState.MISSING, sent_at > cutoff),
    )
    changed = session.execute(
        update(Send)
        .where(col(Send.project) == project.code, crossed)
        .values(state=state_expression(as_of, project.missing_after), state_changed_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(changed, "rowcount", 0) or 0)
