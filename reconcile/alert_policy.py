"""The alert policy: turn the problems found at one moment into raised, reminded and closed alerts.

``evaluate_alerts`` compares each project's problems with its open alerts. A new problem opens
an alert and queues it. An open alert whose problem remains is queued again as a reminder once
``[alerts] reminder_every`` has passed since it was last queued. An open alert whose problem is
gone is closed, with a resolution note when the problem was fixed rather than replaced by
another. Each project is one transaction, so alerts and their outbox items are stored together,
and running the policy twice at the same moment queues nothing the second time.

``evaluate_digests`` makes sure every project has its digest for the latest digest moment.
Both take ``now`` so that the daemon, ``acuse alerts send-now`` and the tests share one clock.
"""

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from config.alert_settings import AlertKind
from config.database import Database
from config.settings import ProjectView, Settings, project_views
from reconcile.alert_findings import (
    SEND_KINDS,
    Finding,
    Findings,
    find_delivery_failing,
    find_problems,
)
from reconcile.alert_models import INSTALLATION, Alert, AlertEvent, Resolution
from reconcile.alert_queue import Notice, ensure_digest, queue_alert
from reconcile.alert_routing import kind_route, latest_digest_time

log = logging.getLogger(__name__)

_DEFAULT_RESOLUTIONS = {
    AlertKind.ORPHAN_EVIDENCE: Resolution.EVIDENCE_CLAIMED,
    AlertKind.MAILBOX_UNREACHABLE: Resolution.MAILBOX_RECOVERED,
    AlertKind.EVIDENCE_SILENCE: Resolution.EVIDENCE_ARRIVED,
    AlertKind.QUARANTINED_MESSAGES: Resolution.MESSAGE_RELEASED,
    AlertKind.SEND_LOG_FAILED: Resolution.SEND_LOG_IMPORTED,
    AlertKind.ALERT_DELIVERY_FAILING: Resolution.DELIVERY_RECOVERED,
    **dict.fromkeys(SEND_KINDS.values(), Resolution.STATE_CHANGED),
}
# A problem that turned into another one is reported by the new alert, not by a note.
_SILENT_RESOLUTIONS = frozenset({Resolution.STATE_CHANGED, Resolution.DISABLED})


@dataclass
class AlertSummary:
    """Counts of one evaluation over every project."""

    now: datetime
    raised: int = 0
    reminded: int = 0
    resolved: int = 0
    queued: int = 0
    digests: int = 0
    by_kind: dict[AlertKind, int] = field(default_factory=dict)


def evaluate_alerts(database: Database, settings: Settings, now: datetime) -> AlertSummary:
    """Raise, remind and close every project's alerts as the problems stand at ``now``."""
    summary = AlertSummary(now)
    for project in project_views(settings):
        with database.write(lock=f"alerts:{project.code}") as session:
            open_alerts = _open_alerts(session, project.code)
            findings = find_problems(session, settings, project, open_alerts, now)
            _Evaluation(session, settings, project, summary, now).apply(open_alerts, findings)

    with database.write(lock=f"alerts:{INSTALLATION}") as session:
        open_alerts = _open_alerts(session, INSTALLATION)
        failing = find_delivery_failing(session, settings, now)
        findings = Findings(problems=[failing] if failing is not None else [])
        _Evaluation(session, settings, None, summary, now).apply(open_alerts, findings)

    log.info(
        "alerts evaluated",
        extra={
            "raised": summary.raised,
            "reminded": summary.reminded,
            "resolved": summary.resolved,
            "queued": summary.queued,
        },
    )
    return summary


def evaluate_digests(database: Database, settings: Settings, now: datetime) -> AlertSummary:
    """Create each project's digest for its latest digest moment, unless it exists already.

    A daemon that was stopped through several digest moments sends only the latest one.
    """
    summary = AlertSummary(now)
    for project in project_views(settings):
        alerts = project.settings.alerts
        if not (alerts.enabled and alerts.digest):
            continue
        at = latest_digest_time(settings, project, now)
        with database.write(lock=f"alerts:{project.code}") as session:
            if ensure_digest(session, settings, project, at, now):
                summary.digests += 1
                log.info("digest queued", extra={"project": project.code, "at": at.isoformat()})
    return summary


def _open_alerts(session: Session, project: str) -> list[Alert]:
    query = select(Alert).where(col(Alert.project) == project, col(Alert.resolved_at).is_(None))
    return list(session.execute(query.order_by(col(Alert.id))).scalars())


@dataclass
class _Evaluation:
    """Applies one scope's findings to its open alerts inside one transaction."""

    session: Session
    settings: Settings
    project: ProjectView | None
    summary: AlertSummary
    now: datetime

    def apply(self, open_alerts: Iterable[Alert], findings: Findings) -> None:
        remaining = {(alert.kind, alert.subject_key): alert for alert in open_alerts}
        for finding in findings.problems:
            route = kind_route(self.settings, self.project, finding.kind)
            if not route.enabled:
                continue
            alert = remaining.pop((finding.kind, finding.subject_key), None)
            if alert is None:
                self._raise(finding)
            else:
                self._keep(alert, finding)
        for key, alert in remaining.items():
            resolution, details = findings.resolutions.get(key, (None, None))
            if not kind_route(self.settings, self.project, alert.kind).enabled:
                resolution = Resolution.DISABLED
            self._resolve(alert, resolution or _DEFAULT_RESOLUTIONS[alert.kind], details)

    def _raise(self, finding: Finding) -> None:
        alert = Alert(
            kind=finding.kind,
            project=self.project.code if self.project else INSTALLATION,
            subject_key=finding.subject_key,
            send_id=finding.send_id,
            evidence_id=finding.evidence_id,
            message_pk=finding.message_pk,
            details=_dump(finding.details),
            opened_at=self.now,
            last_seen_at=self.now,
            last_notified_at=self.now,
        )
        self.session.add(alert)
        self.session.flush()
        self.summary.raised += 1
        self.summary.by_kind[finding.kind] = self.summary.by_kind.get(finding.kind, 0) + 1
        self._queue(alert, AlertEvent.RAISED, finding.details)
        level = logging.ERROR if finding.kind is AlertKind.ALERT_DELIVERY_FAILING else logging.INFO
        log.log(level, "alert raised", extra=_log_fields(alert))

    def _keep(self, alert: Alert, finding: Finding) -> None:
        alert.details = _dump(finding.details)
        alert.last_seen_at = self.now
        due = alert.last_notified_at is None or (
            self.now - alert.last_notified_at >= self.settings.alerts.reminder_every
        )
        if due:
            alert.last_notified_at = self.now
            alert.reminders += 1
            self.summary.reminded += 1
            self._queue(alert, AlertEvent.REMINDER, finding.details)
            if alert.kind is AlertKind.ALERT_DELIVERY_FAILING:
                log.error("alert delivery still failing", extra=_log_fields(alert))
        self.session.add(alert)

    def _resolve(
        self, alert: Alert, resolution: Resolution, details: dict[str, Any] | None
    ) -> None:
        alert.resolved_at = self.now
        alert.resolution = resolution
        if details is not None:
            alert.details = _dump(details)
        self.session.add(alert)
        self.summary.resolved += 1
        log.info("alert resolved", extra={**_log_fields(alert), "resolution": resolution.value})

        notes_on = self.settings.alerts.resolution_notes
        if notes_on and resolution not in _SILENT_RESOLUTIONS and alert.last_notified_at:
            self._queue(alert, AlertEvent.RESOLVED, json.loads(alert.details))

    def _queue(self, alert: Alert, event: AlertEvent, details: dict[str, Any]) -> None:
        route = kind_route(self.settings, self.project, alert.kind)
        notice = Notice(alert, event, {**details, "resolution": _value(alert.resolution)}, route)
        if queue_alert(self.session, self.settings, self.project, notice, self.now) is not None:
            self.summary.queued += 1


def _value(resolution: Resolution | None) -> str | None:
    return resolution.value if resolution is not None else None


def _dump(details: dict[str, Any]) -> str:
    return json.dumps(details, ensure_ascii=False, sort_keys=True)


def _log_fields(alert: Alert) -> dict[str, Any]:
    return {
        "alert": alert.id,
        "kind": alert.kind.value,
        "project": alert.project,
        "subject_key": alert.subject_key,
    }
