"""The read side of alerts: listings for ``acuse alerts`` and the outbox health for status."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from config.alert_settings import AlertKind
from config.settings import Settings, project_view
from reconcile.alert_findings import find_problems
from reconcile.alert_models import Alert, OutboxMessage, Resolution
from reconcile.alert_routing import kind_route
from reconcile.alert_texts import TITLES


@dataclass(frozen=True)
class AlertView:
    """One alert as the command line shows it."""

    id: int
    kind: AlertKind
    project: str
    subject_key: str
    opened_at: datetime
    last_notified_at: datetime | None
    reminders: int
    resolved_at: datetime | None
    resolution: Resolution | None
    details: dict[str, Any]


@dataclass(frozen=True)
class OutboxHealth:
    """The state of alert delivery: emails waiting and since when delivery fails."""

    waiting: int
    failing_since: datetime | None
    last_error: str | None
    delivery_failing: AlertView | None


def list_alerts(
    session: Session, project: str | None = None, include_resolved: bool = False
) -> list[AlertView]:
    """Return the alerts, open only unless ``include_resolved``, newest first."""
    query = select(Alert)
    if project is not None:
        query = query.where(col(Alert.project) == project)
    if not include_resolved:
        query = query.where(col(Alert.resolved_at).is_(None))
    query = query.order_by(col(Alert.opened_at).desc(), col(Alert.id).desc())
    return [_view(alert) for alert in session.execute(query).scalars()]


def _view(alert: Alert) -> AlertView:
    assert alert.id is not None
    return AlertView(
        id=alert.id,
        kind=alert.kind,
        project=alert.project,
        subject_key=alert.subject_key,
        opened_at=alert.opened_at,
        last_notified_at=alert.last_notified_at,
        reminders=alert.reminders,
        resolved_at=alert.resolved_at,
        resolution=alert.resolution,
        details=json.loads(alert.details),
    )


def outbox_health(session: Session) -> OutboxHealth:
    """Count the emails waiting and find the open ``alert_delivery_failing`` alert, if any."""
    waiting_rows = col(OutboxMessage.sent_at).is_(None)
    waiting, failing_since, last_error = session.execute(
        select(
            func.count(),
            func.min(col(OutboxMessage.first_failed_at)),
            func.max(col(OutboxMessage.last_error)),
        ).where(waiting_rows)
    ).one()
    failing = (
        session.execute(
            select(Alert).where(
                col(Alert.kind) == AlertKind.ALERT_DELIVERY_FAILING,
                col(Alert.resolved_at).is_(None),
            )
        )
        .scalars()
        .first()
    )
    return OutboxHealth(
        waiting=waiting,
        failing_since=failing_since,
        last_error=last_error,
        delivery_failing=_view(failing) if failing is not None else None,
    )


def open_alert_count(session: Session, project: str) -> int:
    """Count the open alerts of ``project``."""
    query = select(func.count()).where(
        col(Alert.project) == project,
        col(Alert.resolved_at).is_(None),
    )
    return int(session.execute(query).scalar_one())


def current_details(
    session: Session, settings: Settings, code: str, kind: AlertKind, now: datetime
) -> list[dict[str, Any]]:
    """Find the details of every current problem of ``kind`` in ``code``, changing nothing."""
    project = project_view(settings, code)
    open_alerts = list(
        session.execute(
            select(Alert).where(col(Alert.project) == code, col(Alert.resolved_at).is_(None))
        ).scalars()
    )
    findings = find_problems(session, settings, project, open_alerts, now)
    if not kind_route(settings, project, kind).enabled:
        return []
    return [finding.details for finding in findings.problems if finding.kind is kind]


def kind_title(kind: AlertKind) -> str:
    """Return the English message id of a kind's title, to translate where it is shown."""
    return TITLES[kind]
