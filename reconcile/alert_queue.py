"""Putting alerts into the outbox, grouped into as few emails as the policy allows.

An immediate alert joins the email of its project, kind, event and recipients that is still
collecting (its ``send_after`` lies ahead), or starts a new one that collects for the
``[alerts] group_window``. A digest alert joins the project's digest for the next digest
moment. Every call runs inside the caller's transaction, so an alert and its outbox item are
stored together or not at all.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from config.alert_settings import AlertMode
from config.settings import ProjectView, Settings
from monitor.models import StoredMessage
from reconcile.alert_models import (
    Alert,
    AlertEvent,
    OutboxItem,
    OutboxMessage,
    OutboxPurpose,
)
from reconcile.alert_routing import (
    KindRoute,
    digest_recipients,
    latest_digest_time,
    next_digest_time,
)
from reconcile.models import Send

log = logging.getLogger(__name__)


def recipients_text(recipients: tuple[str, ...]) -> str:
    """Join the recipients as the outbox stores them: comma-separated, in order."""
    return ", ".join(recipients)


def _recipients_tag(recipients: tuple[str, ...]) -> str:
    joined = "\n".join(sorted(address.lower() for address in recipients))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def digest_group_key(project: str, at: datetime, recipients: tuple[str, ...]) -> str:
    """Build the group key of the digest of ``project`` at ``at`` for ``recipients``."""
    return f"digest:{project}:{at.isoformat()}:{_recipients_tag(recipients)}"


@dataclass(frozen=True)
class Notice:
    """One alert to report: what happened to it, its details now, and where it goes."""

    alert: Alert
    event: AlertEvent
    details: dict[str, Any]
    route: KindRoute


def queue_alert(
    session: Session,
    settings: Settings,
    project: ProjectView | None,
    notice: Notice,
    now: datetime,
) -> OutboxMessage | None:
    """Add the notice to the outbox; return its email, or None when it has no recipients."""
    alert, route = notice.alert, notice.route
    if not route.recipients:
        log.warning(
            "alert has no recipients",
            extra={"project": alert.project, "kind": alert.kind.value, "alert": alert.id},
        )
        return None
    if route.mode is AlertMode.DIGEST and project is not None:
        message = digest_message(session, settings, project, route.recipients, now)
    else:
        message = _collecting_message(session, settings, notice, now)

    assert message.id is not None
    assert alert.id is not None
    session.add(
        OutboxItem(
            outbox_id=message.id,
            alert_id=alert.id,
            event=notice.event,
            details=json.dumps(notice.details, ensure_ascii=False, sort_keys=True),
            queued_at=now,
        )
    )
    return message


def _collecting_message(
    session: Session, settings: Settings, notice: Notice, now: datetime
) -> OutboxMessage:
    alert, route, event = notice.alert, notice.route, notice.event
    group_key = (
        f"alert:{alert.project}:{alert.kind.value}:{event.value}:"
        f"{_recipients_tag(route.recipients)}"
    )
    collecting: OutboxMessage | None = (
        session.execute(
            select(OutboxMessage)
            .where(
                col(OutboxMessage.group_key) == group_key,
                col(OutboxMessage.rendered) == False,  # noqa: E712 - SQL comparison
                col(OutboxMessage.send_after) > now,
            )
            .order_by(col(OutboxMessage.id))
            # On PostgreSQL the row lock orders this against delivery rendering the email, so
            # an item never joins an email that has already been rendered.
            .with_for_update()
        )
        .scalars()
        .first()
    )
    if collecting is not None:
        return collecting
    return _new_message(
        session,
        OutboxMessage(
            purpose=OutboxPurpose.ALERT,
            project=alert.project,
            kind=alert.kind,
            event=event,
            group_key=group_key,
            recipients=recipients_text(route.recipients),
            created_at=now,
            send_after=now + settings.alerts.group_window,
        ),
    )


def digest_message(
    session: Session,
    settings: Settings,
    project: ProjectView,
    recipients: tuple[str, ...],
    now: datetime,
    *,
    at: datetime | None = None,
) -> OutboxMessage:
    """Return the digest email of ``project`` for ``at`` (default: the next digest moment).

    The digest is created when missing; a digest already sent is returned as it is.
    """
    at = at or next_digest_time(settings, project, now)
    group_key = digest_group_key(project.code, at, recipients)
    existing: OutboxMessage | None = (
        session.execute(
            select(OutboxMessage)
            .where(col(OutboxMessage.group_key) == group_key)
            .order_by(col(OutboxMessage.id))
        )
        .scalars()
        .first()
    )
    if existing is not None:
        return existing
    return _new_message(
        session,
        OutboxMessage(
            purpose=OutboxPurpose.DIGEST,
            project=project.code,
            group_key=group_key,
            recipients=recipients_text(recipients),
            created_at=now,
            send_after=at,
            period_start=latest_digest_time(settings, project, at - timedelta(seconds=1)),
        ),
    )


def ensure_digest(
    session: Session, settings: Settings, project: ProjectView, at: datetime, now: datetime
) -> bool:
    """Make sure the project's managers' digest for ``at`` exists; return whether it was added.

    No digest is made for a moment before the project's first recorded activity, because its
    whole period would precede acuse and every count would be zero.
    """
    recipients = digest_recipients(settings, project)
    if not recipients:
        return False
    first = first_activity(session, project.code)
    if first is None or first >= at:
        return False
    group_key = digest_group_key(project.code, at, recipients)
    exists = session.execute(
        select(col(OutboxMessage.id)).where(col(OutboxMessage.group_key) == group_key)
    ).first()
    if exists is not None:
        return False
    digest_message(session, settings, project, recipients, now, at=at)
    return True


def first_activity(session: Session, code: str) -> datetime | None:
    """When acuse first recorded anything for project ``code``: a send, a message or an alert."""
    firsts = [
        session.execute(select(func.min(column)).where(owner == code)).scalar_one()
        for column, owner in (
            (col(Send.imported_at), col(Send.project)),
            (col(StoredMessage.stored_at), col(StoredMessage.project)),
            (col(Alert.opened_at), col(Alert.project)),
        )
    ]
    known: list[datetime] = [first for first in firsts if first is not None]
    return min(known, default=None)


def queue_test_email(
    session: Session, project: ProjectView, recipients: tuple[str, ...], now: datetime
) -> OutboxMessage:
    """Queue a test email to ``recipients`` that is due at once."""
    return _new_message(
        session,
        OutboxMessage(
            purpose=OutboxPurpose.TEST,
            project=project.code,
            group_key=f"test:{project.code}:{now.isoformat()}",
            recipients=recipients_text(recipients),
            created_at=now,
            send_after=now,
        ),
    )


def _new_message(session: Session, message: OutboxMessage) -> OutboxMessage:
    session.add(message)
    session.flush()
    return message
