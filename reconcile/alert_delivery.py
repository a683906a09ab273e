"""Delivering the outbox: claim the emails that are due, render each once, send them over SMTP.

A delivery run claims due rows for a lease with ``SELECT ... FOR UPDATE SKIP LOCKED``, so two
runs (two daemon instances, or the daemon and ``acuse alerts send-now``) never send the same row
at once. An email is rendered on its first
attempt and keeps its bytes and Message-ID through every retry. An email that the server does
not accept stays in the outbox, and nothing is ever dropped from it. It is tried again after a
delay that doubles from ``[alerts] retry_first`` up to ``[alerts] retry_max``.

NOTE: SMTP has no way to make delivery and the database commit one step. If the process dies
after the server accepted an email and before its row is marked sent, the email goes out again
on the next run, with the same Message-ID.
"""

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid

from sqlalchemy import func, or_, select, update
from sqlmodel import Session, col

from config.alert_settings import AlertKind
from config.database import Database
from config.errors import AcuseError
from config.i18n import _
from config.logs import register_secret
from config.secrets import read_secret
from config.settings import Settings, project_views
from reconcile.alert_models import Alert, AlertEvent, OutboxItem, OutboxMessage, OutboxPurpose
from reconcile.alert_render import (
    DaySummary,
    ItemData,
    RenderedEmail,
    build_message,
    render_alert,
    render_digest,
    render_test,
)
from reconcile.alert_routing import AlertScope, installation_scope, scope_for
from reconcile.models import Send, SendState
from reconcile.smtp_transport import SmtpTransport, SmtpUnavailable
from reconcile.states import state_expression

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=10)
BATCH_LIMIT = 200
PASSWORD_KEY = "smtp.password_file"  # noqa: S105 - the name of a setting, not a password


class SmtpNotConfigured(AcuseError):
    """Alert emails wait in the outbox but the configuration has no ``[smtp]`` section."""


@dataclass
class DeliverySummary:
    """Counts of one delivery run, and of the emails that still wait."""

    now: datetime
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    waiting: int = 0
    last_error: str | None = None


def smtp_password(settings: Settings) -> str | None:
    """Read the SMTP password from its secret file and keep it out of every log line."""
    smtp = settings.smtp
    if smtp is None or smtp.password_file is None:
        return None
    password = read_secret(settings, smtp.password_file, PASSWORD_KEY)
    register_secret(password)
    return password


def deliver_outbox(
    database: Database, settings: Settings, now: datetime, *, flush: bool = False
) -> DeliverySummary:
    """Send every outbox email that is due at ``now`` and record how each attempt went.

    ``flush`` also sends the alert emails still inside their grouping window; digests always
    wait for their time.
    """
    summary = DeliverySummary(now)
    token = uuid.uuid4().hex
    claimed = _claim_due(database, now, token, flush)
    summary.claimed = len(claimed)
    if claimed:
        _render_claimed(database, settings, claimed, now)
        _send_claimed(database, settings, claimed, now, summary)
    summary.waiting = waiting_count(database)

    if summary.claimed:
        level = logging.WARNING if summary.failed else logging.INFO
        log.log(
            level,
            "alert emails delivered",
            extra={
                "sent": summary.sent,
                "failed": summary.failed,
                "waiting": summary.waiting,
                "error": summary.last_error,
            },
        )
    return summary


def waiting_count(database: Database) -> int:
    """Count the outbox emails that the SMTP server has not accepted yet."""
    with database.session() as session:
        query = select(func.count()).where(col(OutboxMessage.sent_at).is_(None))
        return int(session.execute(query).scalar_one())


def _claim_due(database: Database, now: datetime, token: str, flush: bool) -> list[int]:
    unclaimed = or_(
        col(OutboxMessage.claimed_until).is_(None),
        col(OutboxMessage.claimed_until) < now,
    )
    time_has_come = col(OutboxMessage.send_after) <= now
    if flush:
        time_has_come = or_(time_has_come, col(OutboxMessage.purpose) != OutboxPurpose.DIGEST)
    due = (
        select(col(OutboxMessage.id))
        .where(
            col(OutboxMessage.sent_at).is_(None),
            time_has_come,
            or_(
                col(OutboxMessage.next_attempt_at).is_(None),
                col(OutboxMessage.next_attempt_at) <= now,
            ),
            unclaimed,
        )
        .order_by(col(OutboxMessage.send_after), col(OutboxMessage.id))
        .limit(BATCH_LIMIT)
    )
    # SKIP LOCKED lets a concurrent run on PostgreSQL pass over the rows that this one is
    # claiming instead of waiting for them; SQLite has no row locks and serialises the claim.
    with database.write() as session:
        claimed = [
            int(outbox_id)
            for outbox_id in session.execute(due.with_for_update(skip_locked=True)).scalars()
        ]
        if claimed:
            session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_(claimed))
                .values(claimed_by=token, claimed_until=now + CLAIM_LEASE)
            )
    return claimed


def _render_claimed(database: Database, settings: Settings, ids: list[int], now: datetime) -> None:
    with database.write() as session:
        for outbox_id in ids:
            message = session.get(OutboxMessage, outbox_id, with_for_update=True)
            assert message is not None
            if message.rendered:
                continue
            rendered = _render_message(session, settings, message, now)
            sender = settings.smtp.sender if settings.smtp else "acuse@localhost"
            domain = sender.rsplit("@", 1)[-1].strip(">") or "localhost"
            scope = _scope(settings, message.project)
            message.message_id = make_msgid(idstring=f"acuse.{outbox_id}", domain=domain)
            message.subject = rendered.subject
            message.raw = build_message(
                rendered,
                sender,
                _recipients(message),
                message.message_id,
                now.astimezone(scope.timezone),
            )
            message.rendered = True
            session.add(message)


def _scope(settings: Settings, code: str) -> AlertScope:
    """Return the scope of a project, or its bare code once it left the configuration."""
    scope = scope_for(settings, code)
    if scope is not None:
        return scope
    fallback = installation_scope(settings)
    return AlertScope(code, code, fallback.timezone, fallback.locale)


def _recipients(message: OutboxMessage) -> list[str]:
    return [address.strip() for address in message.recipients.split(",") if address.strip()]


def _items(session: Session, outbox_id: int) -> list[ItemData]:
    rows = session.execute(
        select(OutboxItem, col(Alert.kind))
        .join(Alert, col(Alert.id) == col(OutboxItem.alert_id))
        .where(col(OutboxItem.outbox_id) == outbox_id)
        .order_by(col(OutboxItem.id))
    ).all()
    return [
        ItemData(AlertKind(kind), AlertEvent(item.event), json.loads(item.details))
        for item, kind in rows
    ]


def _render_message(
    session: Session, settings: Settings, message: OutboxMessage, now: datetime
) -> RenderedEmail:
    scope = _scope(settings, message.project)
    if message.purpose is OutboxPurpose.TEST:
        return render_test(settings, scope, _recipients(message), now)
    assert message.id is not None
    items = _items(session, message.id)
    if message.purpose is OutboxPurpose.DIGEST:
        period_start = message.period_start or message.send_after - timedelta(days=1)
        summary = day_summary(
            session, settings, message.project, (period_start, message.send_after)
        )
        period = (period_start, message.send_after)
        return render_digest(settings, scope, items, summary, period, now=now)
    return render_alert(settings, scope, items, now)


def day_summary(
    session: Session, settings: Settings, code: str, period: tuple[datetime, datetime]
) -> DaySummary:
    """Count the sends of ``period`` by their state at its end, and the open alerts then."""
    project = next((view for view in project_views(settings) if view.code == code), None)
    if project is None:
        return DaySummary()
    start, end = period
    state = state_expression(end, project.missing_after)
    counts = {
        SendState(value): total
        for value, total in session.execute(
            select(state, func.count())
            .where(col(Send.project) == code, col(Send.sent_at) >= start, col(Send.sent_at) < end)
            .group_by(state)
        ).all()
    }
    open_alerts = session.execute(
        select(func.count()).where(col(Alert.project) == code, col(Alert.resolved_at).is_(None))
    ).scalar_one()
    named = {
        SendState.CERTIFIED,
        SendState.PENDING,
        SendState.MISSING,
        SendState.DELIVERY_FAILED,
        SendState.REJECTED,
    }
    return DaySummary(
        sends=sum(counts.values()),
        certified=counts.get(SendState.CERTIFIED, 0),
        pending=counts.get(SendState.PENDING, 0),
        missing=counts.get(SendState.MISSING, 0),
        failed=counts.get(SendState.DELIVERY_FAILED, 0),
        rejected=counts.get(SendState.REJECTED, 0),
        other=sum(total for value, total in counts.items() if value not in named),
        open_alerts=open_alerts,
    )


def _send_claimed(
    database: Database,
    settings: Settings,
    ids: list[int],
    now: datetime,
    summary: DeliverySummary,
) -> None:
    smtp = settings.smtp
    if smtp is None:
        error = _(
            "Alert emails wait in the outbox, but the configuration has no [smtp] section: "
            "add one so that they can be sent."
        )
        _record_failures(database, settings, ids, error, summary)
        return
    try:
        password = smtp_password(settings)
        with SmtpTransport(smtp, password) as transport:
            for outbox_id in ids:
                try:
                    _send_one(database, transport, smtp.sender_address, outbox_id, now)
                except SmtpUnavailable:
                    # The connection is gone: every email not yet sent fails the same way.
                    raise
                except AcuseError as exc:
                    _record_failures(database, settings, [outbox_id], str(exc), summary)
                    continue
                summary.sent += 1
    except AcuseError as exc:
        unsent = _unsent(database, ids)
        _record_failures(database, settings, unsent, str(exc), summary)


def _send_one(
    database: Database, transport: SmtpTransport, sender: str, outbox_id: int, now: datetime
) -> None:
    with database.session() as session:
        message = session.get(OutboxMessage, outbox_id)
        assert message is not None
        assert message.raw is not None
        raw, recipients = message.raw, _recipients(message)

    accepted = transport.send(sender, recipients, raw)

    with database.write() as session:
        session.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == outbox_id)
            .values(
                sent_at=now,
                smtp_reply=accepted.reply,
                refused="; ".join(f"{k}: {v}" for k, v in accepted.refused.items()) or None,
                attempts=col(OutboxMessage.attempts) + 1,
                last_attempt_at=now,
                next_attempt_at=None,
                claimed_by=None,
                claimed_until=None,
            )
        )
    if accepted.refused:
        log.warning(
            "alert email refused for some recipients",
            extra={"outbox": outbox_id, "refused": sorted(accepted.refused)},
        )


def _unsent(database: Database, ids: list[int]) -> list[int]:
    with database.session() as session:
        query = select(col(OutboxMessage.id)).where(
            col(OutboxMessage.id).in_(ids),
            col(OutboxMessage.sent_at).is_(None),
            col(OutboxMessage.claimed_by).is_not(None),
        )
        return [value for value in session.execute(query).scalars() if value is not None]


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    """Return the wait before attempt ``attempts + 1``, doubling up to ``retry_max``."""
    first, maximum = settings.alerts.retry_first, settings.alerts.retry_max
    exponent = max(attempts - 1, 0)
    if exponent > 30:
        return maximum
    return min(first * (1 << exponent), maximum)


def _record_failures(
    database: Database, settings: Settings, ids: list[int], error: str, summary: DeliverySummary
) -> None:
    now = summary.now
    with database.write() as session:
        for outbox_id in ids:
            message = session.get(OutboxMessage, outbox_id)
            if message is None or message.sent_at is not None:
                continue
            message.attempts += 1
            message.last_attempt_at = now
            message.first_failed_at = message.first_failed_at or now
            message.last_error = error
            message.next_attempt_at = now + retry_delay(settings, message.attempts)
            message.claimed_by = None
            message.claimed_until = None
            session.add(message)
            summary.failed += 1
    summary.last_error = error
