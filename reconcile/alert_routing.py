"""Who receives each kind of alert, when, and in which language and time zone.

A kind's switch, mode and recipients come from the built-in defaults, then ``[alerts.kinds.K]``,
then ``[projects.alerts.kinds.K]``, each key overriding only what it sets. Managers' kinds go by
default to the project's ``[projects.alerts] recipients`` or else its ``managers``; operational
kinds go to ``[projects.alerts] operators`` or else ``[alerts] operators``.
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from config.alert_settings import AlertKind, AlertKindSettings, AlertMode
from config.i18n import _
from config.settings import ProjectView, Settings, project_views
from reconcile.alert_models import INSTALLATION

OPERATIONAL_KINDS = frozenset(
    {
        AlertKind.MAILBOX_UNREACHABLE,
        AlertKind.EVIDENCE_SILENCE,
        AlertKind.QUARANTINED_MESSAGES,
        AlertKind.SEND_LOG_FAILED,
        AlertKind.ALERT_DELIVERY_FAILING,
    }
)
DEFAULT_MODES = {AlertKind.ORPHAN_EVIDENCE: AlertMode.DIGEST}


@dataclass(frozen=True)
class AlertScope:
    """The project an alert belongs to, or the whole installation, as an email presents it."""

    code: str
    name: str
    timezone: ZoneInfo
    locale: str


@dataclass(frozen=True)
class KindRoute:
    """Whether a kind is on in a scope, how it is sent and to whom."""

    kind: AlertKind
    enabled: bool
    mode: AlertMode
    recipients: tuple[str, ...]


def project_scope(project: ProjectView) -> AlertScope:
    """The scope of a project's alerts."""
    return AlertScope(project.code, project.name, project.timezone, project.locale)


def installation_scope(settings: Settings) -> AlertScope:
    """The scope of alerts about the installation itself, in the default zone and locale."""
    defaults = settings.defaults
    return AlertScope(INSTALLATION, "acuse", ZoneInfo(defaults.timezone), defaults.locale)


def scope_for(settings: Settings, code: str) -> AlertScope | None:
    """The scope of project ``code``, of the installation for ``""``, or None when unknown."""
    if code == INSTALLATION:
        return installation_scope(settings)
    for project in project_views(settings):
        if project.code == code:
            return project_scope(project)
    return None


def _merged(*layers: AlertKindSettings | None) -> AlertKindSettings:
    merged = AlertKindSettings()
    for layer in layers:
        if layer is not None:
            merged = merged.model_copy(update=layer.model_dump(exclude_none=True))
    return merged


def _default_recipients(
    settings: Settings, project: ProjectView | None, kind: AlertKind
) -> list[str]:
    if project is None:
        return list(settings.alerts.operators)
    own = project.settings.alerts
    if kind in OPERATIONAL_KINDS:
        return list(own.operators if own.operators is not None else settings.alerts.operators)
    return list(own.recipients if own.recipients is not None else project.settings.managers)


def kind_route(settings: Settings, project: ProjectView | None, kind: AlertKind) -> KindRoute:
    """Resolve the switch, mode and recipients of ``kind`` for ``project`` (None: installation)."""
    project_layer = project.settings.alerts.kinds.get(kind.value) if project else None
    merged = _merged(settings.alerts.kinds.get(kind.value), project_layer)
    project_on = project.settings.alerts.enabled if project is not None else True
    recipients = (
        merged.recipients
        if merged.recipients is not None
        else _default_recipients(settings, project, kind)
    )
    return KindRoute(
        kind=kind,
        enabled=project_on and (merged.enabled if merged.enabled is not None else True),
        mode=merged.mode or DEFAULT_MODES.get(kind, AlertMode.IMMEDIATE),
        recipients=tuple(dict.fromkeys(recipients)),
    )


def digest_recipients(settings: Settings, project: ProjectView) -> tuple[str, ...]:
    """Who receives the project's daily digest with the summary of the day."""
    own = project.settings.alerts
    recipients = own.recipients if own.recipients is not None else project.settings.managers
    return tuple(dict.fromkeys(recipients))


def digest_time_of_day(settings: Settings, project: ProjectView) -> time:
    """The local time of the project's daily digest."""
    return project.settings.alerts.digest_at or settings.alerts.digest_at


def latest_digest_time(settings: Settings, project: ProjectView, now: datetime) -> datetime:
    """The most recent digest moment at or before ``now``, in the project's zone."""
    zone = project.timezone
    at = digest_time_of_day(settings, project)
    local_day = now.astimezone(zone).date()
    candidate = datetime.combine(local_day, at, tzinfo=zone)
    if candidate > now:
        candidate = datetime.combine(local_day - timedelta(days=1), at, tzinfo=zone)
    return candidate


def next_digest_time(settings: Settings, project: ProjectView, now: datetime) -> datetime:
    """The first digest moment after ``now``, in the project's zone."""
    latest = latest_digest_time(settings, project, now)
    at = digest_time_of_day(settings, project)
    return datetime.combine(latest.date() + timedelta(days=1), at, tzinfo=project.timezone)


def alert_recipients(settings: Settings) -> set[str]:
    """Collect every address that an enabled alert kind or digest of the configuration emails."""
    recipients: set[str] = set()
    scopes: list[ProjectView | None] = [None, *project_views(settings)]
    for project in scopes:
        for kind in AlertKind:
            route = kind_route(settings, project, kind)
            if route.enabled:
                recipients.update(route.recipients)
    for project in project_views(settings):
        if project.settings.alerts.enabled and project.settings.alerts.digest:
            recipients.update(digest_recipients(settings, project))
    return recipients


def missing_smtp_warning(settings: Settings) -> str | None:
    """Word the warning for alerts that have recipients but no SMTP server to go through.

    Returns None when ``[smtp]`` is set or when no alert has a recipient. Alerts are still
    queued without ``[smtp]``, so they go out once it is added.
    """
    if settings.smtp is not None:
        return None
    recipients = alert_recipients(settings)
    if not recipients:
        return None
    return _(
        "No [smtp] section: alert emails to {recipients} are queued in the outbox but never "
        "sent. Add an [smtp] section (see docs/alerts.md) to send them."
    ).format(recipients=", ".join(sorted(recipients)))
