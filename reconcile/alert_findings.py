"""The problems a project has at one moment, each as a finding that an alert can be keyed on.

Send states are judged at the evaluation time with the same rules as every query, never read
from the state that the last reconciliation stored. New problems are looked for only among the
sends, evidence and messages of the ``[alerts] lookback`` period, so a send log with years of
history does not raise years of alerts. Subjects of open alerts are judged whatever their age,
so that they can close.
"""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import false, func, or_, select
from sqlmodel import Session, col

from config.alert_settings import AlertKind
from config.settings import ProjectView, Settings
from monitor.models import Evidence, MailboxHealth, MessageClass, StoredMessage
from reconcile.alert_models import Alert, OutboxMessage, Resolution
from reconcile.models import Send, SendLogFailure, SendState
from reconcile.queries import SendView, list_orphans, list_sends
from reconcile.states import state_expression

SEND_KINDS = {
    SendState.MISSING: AlertKind.CERTIFICATION_MISSING,
    SendState.DELIVERY_FAILED: AlertKind.DELIVERY_FAILED,
    SendState.REJECTED: AlertKind.CERTIFICATION_REJECTED,
    SendState.NOT_COPIED: AlertKind.NOT_COPIED,
    SendState.UNVERIFIED: AlertKind.EVIDENCE_UNVERIFIED,
}
EVIDENCE_MAILBOX_KEY = "evidence-mailbox"
# The resolution of a send's alert when the send reaches a state that raises no alert. Late
# evidence can make a send ambiguous, and no alert kind reports that state, so the note does.
_NEW_STATE_RESOLUTIONS = {
    SendState.CERTIFIED: Resolution.CERTIFIED,
    SendState.AMBIGUOUS: Resolution.NEEDS_REVIEW,
}


@dataclass(frozen=True)
class Finding:
    """One problem: its kind, what it is about, and the facts an email shows."""

    kind: AlertKind
    subject_key: str
    details: dict[str, Any]
    send_id: int | None = None
    evidence_id: int | None = None
    message_pk: int | None = None


@dataclass
class Findings:
    """The problems found, and for subjects that are fine now, why and what they look like."""

    problems: list[Finding] = field(default_factory=list)
    resolutions: dict[tuple[AlertKind, str], tuple[Resolution, dict[str, Any] | None]] = field(
        default_factory=dict
    )


def iso(value: datetime | None) -> str | None:
    """Format a UTC time as ISO 8601 text, the form that details keep."""
    return value.isoformat() if value is not None else None


def send_details(view: SendView) -> dict[str, Any]:
    """Collect the facts about a send that an alert email shows."""
    return {
        "send_id": view.send_id,
        "notification_type": view.notification_type,
        "negocio": view.negocio,
        "inmueble": view.inmueble,
        "client": view.client,
        "recipient": view.recipient,
        "subject": view.subject,
        "sent_at": iso(view.sent_at),
        "deadline": iso(view.deadline),
        "state": view.state.value,
        "certificate_id": view.certificate_id,
        "delivered_at": iso(view.delivered_at),
        "smtp_code": view.smtp_code,
        "smtp_detail": view.smtp_detail,
        "evidence_reason": view.evidence_reason,
        "trust_reasons": view.trust_reasons,
    }


def send_key(send_id: int) -> str:
    return f"send:{send_id}"


@dataclass
class _Search:
    """The inputs and results that every finder of one evaluation shares."""

    session: Session
    settings: Settings
    project: ProjectView
    open_alerts: list[Alert]
    now: datetime
    findings: Findings = field(default_factory=Findings)

    @property
    def since(self) -> datetime:
        return self.now - self.settings.alerts.lookback


def find_problems(
    session: Session,
    settings: Settings,
    project: ProjectView,
    open_alerts: list[Alert],
    now: datetime,
) -> Findings:
    """Collect every problem of ``project`` at ``now``."""
    search = _Search(session, settings, project, open_alerts, now)
    _find_send_problems(search)
    _find_orphans(search)
    _find_unreachable_mailbox(search)
    _find_evidence_silence(search)
    _find_quarantined(search)
    _find_send_log_failures(search)
    return search.findings


def _open_ids(open_alerts: list[Alert], kinds: set[AlertKind], attribute: str) -> set[int]:
    ids = (getattr(alert, attribute) for alert in open_alerts if alert.kind in kinds)
    return {value for value in ids if value is not None}


def _find_send_problems(search: _Search) -> None:
    session, project, now, findings = search.session, search.project, search.now, search.findings
    since, open_alerts = search.since, search.open_alerts
    problem_views = list(
        list_sends(
            session,
            project,
            now,
            states=frozenset(SEND_KINDS),
            where=[col(Send.sent_at) >= since],
        )
    )
    superseded = _superseded(session, project, problem_views, now)
    for view in problem_views:
        if view.send_id in superseded:
            continue
        findings.problems.append(
            Finding(
                SEND_KINDS[view.state],
                send_key(view.send_id),
                send_details(view),
                send_id=view.send_id,
            )
        )

    seen = {view.send_id for view in problem_views}
    alerted = _open_ids(open_alerts, set(SEND_KINDS.values()), "send_id") - seen
    for view in _views_by_id(session, project, alerted, now):
        _judge_alerted_send(view, superseded, findings)
    for send_id in superseded:
        for kind in SEND_KINDS.values():
            findings.resolutions[(kind, send_key(send_id))] = (Resolution.SUPERSEDED, None)


def _judge_alerted_send(view: SendView, superseded: set[int], findings: Findings) -> None:
    """Record what became of a send that has an open alert but is outside the lookback."""
    kind = SEND_KINDS.get(view.state)
    if kind is not None and view.send_id not in superseded:
        findings.problems.append(
            Finding(kind, send_key(view.send_id), send_details(view), send_id=view.send_id)
        )
        return
    resolution = _NEW_STATE_RESOLUTIONS.get(view.state, Resolution.STATE_CHANGED)
    for other in SEND_KINDS.values():
        findings.resolutions[(other, send_key(view.send_id))] = (resolution, send_details(view))


def _views_by_id(
    session: Session, project: ProjectView, send_ids: set[int], now: datetime
) -> Iterator[SendView]:
    ordered = sorted(send_ids)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        yield from list_sends(session, project, now, where=[col(Send.id).in_(chunk)])


def _superseded(
    session: Session, project: ProjectView, views: list[SendView], now: datetime
) -> set[int]:
    """Problem sends that a later certified send to the same recipient and negocio replaced."""
    if not views:
        return set()
    certified = state_expression(now, project.missing_after) == SendState.CERTIFIED.value
    earliest = min(view.sent_at for view in views)
    rows = session.execute(
        select(col(Send.recipient), col(Send.negocio), func.max(col(Send.sent_at)))
        .where(
            col(Send.project) == project.code,
            col(Send.sent_at) > earliest,
            col(Send.sent_at) <= now,
        )
        .where(certified)
        .group_by(col(Send.recipient), col(Send.negocio))
    ).all()
    latest: dict[tuple[str, str | None], datetime] = {}
    for recipient, negocio, sent_at in rows:
        for key in ((recipient, negocio), (recipient, None)):
            if key not in latest or sent_at > latest[key]:
                latest[key] = sent_at
    return {
        view.send_id
        for view in views
        if (later := latest.get((view.recipient, view.negocio))) is not None
        and later > view.sent_at
    }


def _find_orphans(search: _Search) -> None:
    session, project, now, findings = search.session, search.project, search.now, search.findings
    since, open_alerts = search.since, search.open_alerts
    alerted = _open_ids(open_alerts, {AlertKind.ORPHAN_EVIDENCE}, "evidence_id")
    for orphan in list_orphans(session, project, now):
        if orphan.time < since and orphan.evidence_id not in alerted:
            continue
        details = {
            "evidence_id": orphan.evidence_id,
            "kind": orphan.kind.value,
            "certificate_id": orphan.certificate_id,
            "recipient": orphan.recipient,
            "subject": orphan.subject,
            "time": iso(orphan.time),
            "deadline": iso(orphan.deadline),
        }
        findings.problems.append(
            Finding(
                AlertKind.ORPHAN_EVIDENCE,
                f"evidence:{orphan.evidence_id}",
                details,
                evidence_id=orphan.evidence_id,
            )
        )


def _find_unreachable_mailbox(search: _Search) -> None:
    session, project, now, findings = search.session, search.project, search.now, search.findings
    settings = search.settings
    mailbox = project.settings.mailbox
    if mailbox is None:
        return
    health = session.get(MailboxHealth, (project.code, mailbox.folder))
    if health is None or health.failing_since is None:
        return
    if now - health.failing_since < settings.alerts.mailbox_unreachable_after:
        return
    details = {
        "host": mailbox.host,
        "folder": mailbox.folder,
        "username": mailbox.username,
        "failing_since": iso(health.failing_since),
        "consecutive_failures": health.consecutive_failures,
        "last_error": health.last_error,
        "last_success_at": iso(health.last_success_at),
    }
    findings.problems.append(
        Finding(AlertKind.MAILBOX_UNREACHABLE, f"mailbox:{mailbox.folder}", details)
    )


def _find_evidence_silence(search: _Search) -> None:
    """Find a project whose sends go on while no evidence at all has arrived for a long time.

    Only sends older than the project's deadline count, since younger ones may still get their
    evidence. Once raised, the alert stays open until evidence arrives, even through a quiet
    night without sends.
    """
    session, project, now, findings = search.session, search.project, search.now, search.findings
    settings, open_alerts = search.settings, search.open_alerts
    silence_after = settings.alerts.evidence_silence_after
    last_evidence = session.execute(
        select(func.max(col(Evidence.received_at))).where(col(Evidence.project) == project.code)
    ).scalar_one()
    already_open = next(
        (alert for alert in open_alerts if alert.kind is AlertKind.EVIDENCE_SILENCE), None
    )
    if already_open is not None and (
        last_evidence is None or last_evidence <= already_open.opened_at
    ):
        findings.problems.append(
            Finding(
                AlertKind.EVIDENCE_SILENCE, EVIDENCE_MAILBOX_KEY, _silence_details(already_open)
            )
        )
        return

    expecting = [
        col(Send.project) == project.code,
        or_(col(Send.lleida_copied).is_(None), col(Send.lleida_copied) != false()),
    ]
    # Without any evidence yet, the silence began with the first send that expected some.
    silence_start = (
        last_evidence
        or session.execute(select(func.min(col(Send.sent_at))).where(*expecting)).scalar_one()
    )
    if silence_start is None or now - silence_start < silence_after:
        return
    waiting, oldest = session.execute(
        select(func.count(), func.min(col(Send.sent_at))).where(
            *expecting,
            col(Send.sent_at) >= max(silence_start, now - silence_after),
            col(Send.sent_at) <= now - _silence_grace(project, silence_after),
        )
    ).one()
    if not waiting:
        return
    details = {
        "last_evidence_at": iso(last_evidence),
        "sends_waiting": waiting,
        "oldest_send_at": iso(oldest),
    }
    findings.problems.append(Finding(AlertKind.EVIDENCE_SILENCE, EVIDENCE_MAILBOX_KEY, details))


def _silence_grace(project: ProjectView, silence_after: timedelta) -> timedelta:
    return min(project.missing_after, silence_after)


def _silence_details(alert: Alert) -> dict[str, Any]:
    details: dict[str, Any] = json.loads(alert.details)
    return details


def _find_quarantined(search: _Search) -> None:
    session, project, findings = search.session, search.project, search.findings
    since, open_alerts = search.since, search.open_alerts
    alerted = _open_ids(open_alerts, {AlertKind.QUARANTINED_MESSAGES}, "message_pk")
    query = (
        select(StoredMessage)
        .where(
            col(StoredMessage.project) == project.code,
            col(StoredMessage.classification) == MessageClass.QUARANTINED,
        )
        .where(or_(col(StoredMessage.stored_at) >= since, col(StoredMessage.id).in_(alerted)))
        .order_by(col(StoredMessage.stored_at), col(StoredMessage.id))
    )
    for message in session.execute(query).scalars():
        assert message.id is not None
        details = {
            "message_pk": message.id,
            "from_address": message.from_address,
            "subject": message.subject,
            "stored_at": iso(message.stored_at),
            "location": message.location,
            "reason": message.quarantine_reason,
        }
        findings.problems.append(
            Finding(
                AlertKind.QUARANTINED_MESSAGES,
                f"message:{message.id}",
                details,
                message_pk=message.id,
            )
        )


def _find_send_log_failures(search: _Search) -> None:
    project, findings = search.project, search.findings
    query = (
        select(SendLogFailure)
        .where(col(SendLogFailure.project) == project.code)
        .order_by(col(SendLogFailure.failed_at), col(SendLogFailure.path))
    )
    for failure in search.session.execute(query).scalars():
        details = {
            "path": failure.path,
            "failed_at": iso(failure.failed_at),
            "reason": failure.reason,
        }
        # A path can be longer than a subject key, so the key carries a digest of the path.
        digest = hashlib.sha256(failure.path.encode()).hexdigest()[:32]
        findings.problems.append(Finding(AlertKind.SEND_LOG_FAILED, f"send-log:{digest}", details))


def find_delivery_failing(session: Session, settings: Settings, now: datetime) -> Finding | None:
    """Find alert emails that the SMTP server has refused or been unreachable for too long."""
    waiting = col(OutboxMessage.sent_at).is_(None)
    failing_since = session.execute(
        select(func.min(col(OutboxMessage.first_failed_at))).where(waiting)
    ).scalar_one()
    if failing_since is None or now - failing_since < settings.alerts.delivery_failing_after:
        return None
    count, last_error = session.execute(
        select(func.count(), func.max(col(OutboxMessage.last_error))).where(
            waiting,
            col(OutboxMessage.first_failed_at).is_not(None),
        )
    ).one()
    details = {"failing_since": iso(failing_since), "waiting": count, "last_error": last_error}
    return Finding(AlertKind.ALERT_DELIVERY_FAILING, "smtp", details)
