"""``acuse alerts``: list alerts, run the alert jobs now, preview an email, send a test email."""

import json
import sys
from datetime import datetime
from typing import Any

import click

from acuse.cli_queries import as_of_option, format_option
from acuse.context import AppContext
from acuse.labels import format_count, format_time
from acuse.output import Column, OutputFormat, write_rows
from config.alert_settings import AlertKind
from config.database import utcnow
from config.durations import format_duration
from config.errors import ConfigError
from config.i18n import _, ngettext, pgettext
from config.settings import ProjectView, Settings, project_view
from reconcile.alert_delivery import deliver_outbox
from reconcile.alert_examples import example_details
from reconcile.alert_models import INSTALLATION, AlertEvent, OutboxMessage
from reconcile.alert_policy import evaluate_alerts, evaluate_digests
from reconcile.alert_queries import AlertView, current_details, kind_title, list_alerts
from reconcile.alert_queue import queue_test_email
from reconcile.alert_render import ItemData, RenderedEmail, build_message, render_alert
from reconcile.alert_routing import (
    AlertScope,
    digest_recipients,
    installation_scope,
    project_scope,
)

EXIT_RUNTIME = 3
_PARTS = ("subject", "text", "html", "csv", "eml")


def _alert_record(view: AlertView, settings: Settings) -> dict[str, Any]:
    zone = _scope(settings, view.project).timezone
    return {
        "id": view.id,
        "project": view.project,
        "kind": view.kind.value,
        "subject_key": view.subject_key,
        "opened_at": view.opened_at.astimezone(zone).isoformat(),
        "last_notified_at": _iso(view.last_notified_at, zone),
        "reminders": view.reminders,
        "resolved_at": _iso(view.resolved_at, zone),
        "resolution": view.resolution.value if view.resolution else None,
        "details": view.details,
    }


def _iso(value: datetime | None, zone: Any) -> str | None:
    return value.astimezone(zone).isoformat() if value is not None else None


def _scope(settings: Settings, code: str) -> AlertScope:
    if code == INSTALLATION:
        return installation_scope(settings)
    try:
        return project_scope(project_view(settings, code))
    except ConfigError:
        fallback = installation_scope(settings)
        return AlertScope(code, code, fallback.timezone, fallback.locale)


def _describe(view: AlertView) -> str:
    """Describe in one line what the alert is about, from its details."""
    details = view.details
    if "send_id" in details:
        parts = [details.get("negocio"), details.get("client"), details.get("recipient")]
        return " · ".join(str(part) for part in parts if part)
    for key in ("certificate_id", "subject", "folder", "last_error"):
        if details.get(key):
            return str(details[key])
    return view.subject_key


def _alert_row(view: AlertView, settings: Settings) -> dict[str, Any]:
    zone = _scope(settings, view.project).timezone
    if view.resolved_at is None:
        state = _("open")
    else:
        state = _("resolved {time}").format(time=format_time(view.resolved_at, zone))
    return {
        "id": view.id,
        "project": view.project or "-",
        "kind": _(kind_title(view.kind)),
        "subject_key": _describe(view),
        "opened_at": format_time(view.opened_at, zone),
        "reminders": format_count(view.reminders),
        "resolved_at": state,
    }


def _alert_columns() -> list[Column]:
    return [
        Column("id", _("Alert")),
        Column("project", _("Project")),
        Column("kind", _("Kind")),
        Column("subject_key", _("About")),
        Column("opened_at", _("Opened")),
        Column("reminders", _("Reminders")),
        Column("resolved_at", _("State")),
    ]


def print_alerts(
    app: AppContext, project_code: str | None, include_resolved: bool, output_format: str
) -> None:
    """Print the alerts of one project or of all."""
    settings = app.settings
    if project_code is not None:
        settings.project(project_code)
    with app.database.session() as session:
        views = list_alerts(session, project_code, include_resolved)
    chosen = OutputFormat(output_format)
    records = [_alert_record(view, settings) for view in views]
    if chosen is OutputFormat.CSV:
        columns = [Column(key, key) for key in records[0]] if records else _alert_columns()
        for record in records:
            record["details"] = _json(record["details"])
        write_rows(records, columns, chosen)
        return
    human = [_alert_row(view, settings) for view in views]
    write_rows(records, _alert_columns(), chosen, human_rows=human)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def send_now(app: AppContext) -> None:
    """Evaluate the policy and the digests at the current time, then deliver what is due."""
    now = utcnow()
    alerts = evaluate_alerts(app.database, app.settings, now)
    digests = evaluate_digests(app.database, app.settings, now)
    delivery = deliver_outbox(app.database, app.settings, now, flush=True)
    click.echo(
        # TRANSLATORS: "raised", "reminded" and "resolved" count alerts, so they stay in one form.
        ngettext(
            "Alerts: {raised} raised, {reminded} reminded, {resolved} resolved; "
            "{count} digest queued.",
            "Alerts: {raised} raised, {reminded} reminded, {resolved} resolved; "
            "{count} digests queued.",
            digests.digests,
        ).format(
            raised=format_count(alerts.raised),
            reminded=format_count(alerts.reminded),
            resolved=format_count(alerts.resolved),
            count=format_count(digests.digests),
        )
    )
    click.echo(
        # TRANSLATORS: a label followed by counts, so the words stay in one form.
        _("Emails: {sent} sent, {failed} failed, {waiting} waiting in the outbox.").format(
            sent=format_count(delivery.sent),
            failed=format_count(delivery.failed),
            waiting=format_count(delivery.waiting),
        )
    )
    if delivery.failed:
        click.echo(_("Error: {message}").format(message=delivery.last_error), err=True)
        sys.exit(EXIT_RUNTIME)


def preview(
    app: AppContext,
    kind: AlertKind,
    project_code: str,
    event: AlertEvent,
    part: str,
    *,
    as_of: str | None = None,
) -> None:
    """Render the email of ``kind`` for the project's problems, without sending it.

    The problems are judged at ``as_of`` (ISO 8601, default now), with the ``[alerts] lookback``
    period counted back from it, as the daemon would have judged them at that time.
    """
    settings = app.settings
    now = app.parse_as_of(as_of) or utcnow()
    project: ProjectView = project_view(settings, project_code)
    if kind is AlertKind.ALERT_DELIVERY_FAILING:
        scope = installation_scope(settings)
    else:
        scope = project_scope(project)
    with app.database.session() as session:
        details = current_details(session, settings, project.code, kind, now)
    if not details:
        click.echo(
            _(
                "{project} has no problem of kind {kind} at {time} among the sends of the "
                "last {lookback} ([alerts] lookback); showing an invented example. Use --as-of "
                "to judge at another time."
            ).format(
                project=project.code,
                kind=kind.value,
                time=format_time(now, project.timezone),
                lookback=format_duration(settings.alerts.lookback),
            ),
            err=True,
        )
        details = [example_details(kind, now)]
    items = [ItemData(kind, event, entry) for entry in details]
    _print_part(render_alert(settings, scope, items, now), part, settings, project, now)


def _print_part(
    rendered: RenderedEmail, part: str, settings: Settings, project: ProjectView, now: datetime
) -> None:
    if part == "subject":
        click.echo(rendered.subject)
    elif part == "text":
        click.echo(rendered.text, nl=False)
    elif part == "html":
        click.echo(rendered.html, nl=False)
    elif part == "csv":
        click.echo((rendered.attachment or b"").decode("utf-8-sig"), nl=False)
    else:
        sender = settings.smtp.sender if settings.smtp else "acuse@localhost"
        raw = build_message(
            rendered, sender, list(digest_recipients(settings, project)), "<preview@acuse>", now
        )
        sys.stdout.buffer.write(raw)


def send_test(app: AppContext, project_code: str) -> None:
    """Queue a test email to the project's alert recipients and deliver the outbox now."""
    settings = app.settings
    project = project_view(settings, project_code)
    recipients = digest_recipients(settings, project)
    if not recipients:
        message = _(
            "Project {project} has no managers or alert recipients: add managers or "
            "[projects.alerts] recipients."
        ).format(project=project.code)
        raise ConfigError(message, key=f"projects[{project.code}].managers")
    now = utcnow()
    with app.database.write() as session:
        test_id = queue_test_email(session, project, recipients, now).id
    deliver_outbox(app.database, settings, now)
    with app.database.session() as session:
        row = session.get(OutboxMessage, test_id)
    assert row is not None
    if row.sent_at is None:
        click.echo(
            _("Error: the test email was not sent: {error} It stays in the outbox.").format(
                error=row.last_error
            ),
            err=True,
        )
        sys.exit(EXIT_RUNTIME)
    click.echo(
        _("Test email sent to {recipients}; the server replied {reply}.").format(
            recipients=", ".join(recipients), reply=row.smtp_reply
        )
    )


def register(cli: click.Group) -> None:
    """Add the ``alerts`` command group to ``cli``."""

    @cli.group(
        "alerts",
        invoke_without_command=True,
        help=_("List alerts, or send, preview and test alert emails."),
    )
    @click.option(
        "--project",
        "project_code",
        metavar=pgettext("metavar", "CODE"),
        help=_("Only this project (its code)."),
    )
    @click.option(
        "--open/--all",
        "only_open",
        default=True,
        help=_("Only open alerts (default), or every alert including resolved ones."),
    )
    @format_option()
    @click.pass_context
    def alerts_group(
        ctx: click.Context, project_code: str | None, only_open: bool, output_format: str
    ) -> None:
        if ctx.invoked_subcommand is None:
            print_alerts(ctx.obj, project_code, not only_open, output_format)

    @alerts_group.command(
        "send-now",
        help=_(
            "Evaluate the alert policy now, as the daemon does, and deliver every email in the "
            "outbox without waiting for the grouping window; digests still wait for their time."
        ),
    )
    @click.pass_obj
    def send_now_command(app: AppContext) -> None:
        send_now(app)

    @alerts_group.command("preview", help=_("Render an alert email of KIND without sending it."))
    @click.argument(
        "kind",
        metavar=pgettext("metavar", "KIND"),
        type=click.Choice([kind.value for kind in AlertKind]),
    )
    @click.option(
        "--project",
        "project_code",
        required=True,
        metavar=pgettext("metavar", "CODE"),
        help=_("The project."),
    )
    @click.option(
        "--event",
        type=click.Choice([event.value for event in AlertEvent]),
        default=AlertEvent.RAISED.value,
        show_default=True,
        help=_("Render the first notice, a reminder or a resolution note."),
    )
    @click.option(
        "--part",
        type=click.Choice(_PARTS),
        default="text",
        show_default=True,
        help=_("Which part to print: the subject, a body, the CSV or the whole message."),
    )
    @as_of_option()
    @click.pass_obj
    def preview_command(
        app: AppContext, *, kind: str, project_code: str, event: str, part: str, as_of: str | None
    ) -> None:
        preview(app, AlertKind(kind), project_code, AlertEvent(event), part, as_of=as_of)

    @alerts_group.command(
        "test", help=_("Send a test email to the project's managers through the outbox.")
    )
    @click.option(
        "--project",
        "project_code",
        required=True,
        metavar=pgettext("metavar", "CODE"),
        help=_("The project."),
    )
    @click.pass_obj
    def test_command(app: AppContext, project_code: str) -> None:
        send_test(app, project_code)
