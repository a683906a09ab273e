"""``acuse status``: per project, the messages stored, the cursor and the sends per state."""

from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlmodel import Session

from acuse.cli_queries import QueryOptions, format_option, iso_time, project_option
from acuse.context import AppContext
from acuse.labels import format_count, format_time, state_label
from acuse.output import Column, OutputFormat, write_rows
from config.database import utcnow
from config.i18n import _
from config.settings import ProjectView, Settings
from reconcile.alert_queries import OutboxHealth, open_alert_count, outbox_health
from reconcile.models import SendState
from reconcile.queries import ProjectStatus, project_status

_COUNTS = ("messages", "evidence", "unrelated", "quarantined", "orphans")


def _status_record(status: ProjectStatus, project: ProjectView) -> dict[str, Any]:
    """One project's figures with stable English keys; send counts are keyed by state code."""
    cursor = status.cursors[0] if status.cursors else None
    last_reconcile = status.last_reconcile.finished_at if status.last_reconcile else None
    return {
        "project": project.code,
        "name": project.name,
        "messages": status.messages,
        "evidence": status.evidence,
        "unrelated": status.unrelated,
        "quarantined": status.quarantined,
        "orphans": status.orphans,
        "last_message_at": iso_time(status.last_message_at, project),
        "folder": cursor.folder if cursor else None,
        "uidvalidity": cursor.uidvalidity if cursor else None,
        "last_uid": cursor.last_uid if cursor else None,
        "last_reconcile_at": iso_time(last_reconcile, project),
        **{state.value: status.states.get(state, 0) for state in SendState},
    }


def _status_row(status: ProjectStatus, project: ProjectView) -> dict[str, Any]:
    row = _status_record(status, project)
    for key in (*_COUNTS, *(state.value for state in SendState)):
        row[key] = format_count(row[key])
    row["last_message_at"] = format_time(status.last_message_at, project.timezone)
    last_reconcile = status.last_reconcile.finished_at if status.last_reconcile else None
    row["last_reconcile_at"] = format_time(last_reconcile, project.timezone)
    return row


def _status_columns() -> list[Column]:
    return [
        Column("project", _("Project")),
        Column("messages", _("Messages")),
        Column("evidence", _("Evidence")),
        Column("quarantined", _("Quarantined")),
        Column("orphans", _("Orphans")),
        Column("open_alerts", _("Open alerts")),
        Column("last_message_at", _("Last message")),
        Column("last_reconcile_at", _("Last reconciliation")),
        *(Column(state.value, state_label(state)) for state in SendState),
    ]


def print_status(app: AppContext, options: QueryOptions) -> None:
    """Print the status of the chosen projects."""
    now = utcnow()
    records: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    with app.database.session() as session:
        outbox = outbox_health(session)
        for project in app.projects(options.project_code):
            status = project_status(session, project, now)
            alerts = _alert_fields(session, outbox, project)
            records.append({**_status_record(status, project), **alerts})
            rows.append({**_status_row(status, project), "open_alerts": alerts["open_alerts"]})

    chosen = OutputFormat(options.output_format)
    columns = _status_columns()
    if chosen is OutputFormat.CSV:
        columns = [Column(key, key) for key in records[0]] if records else columns
    write_rows(records, columns, chosen, human_rows=rows)
    if chosen is OutputFormat.TABLE and outbox.delivery_failing is not None:
        click.echo(_delivery_failing_line(outbox, app.settings), err=True)


def _alert_fields(session: Session, outbox: OutboxHealth, project: ProjectView) -> dict[str, Any]:
    """Open alerts of the project, and the installation's alert delivery, for scripts."""
    failing = outbox.delivery_failing
    return {
        "open_alerts": open_alert_count(session, project.code),
        "alert_emails_waiting": outbox.waiting,
        "alert_delivery_failing_since": iso_time(failing.opened_at, project) if failing else None,
    }


def _delivery_failing_line(outbox: OutboxHealth, settings: Settings) -> str:
    zone = ZoneInfo(settings.defaults.timezone)
    return _(
        "Warning: alert_delivery_failing: the SMTP server has refused alert emails since "
        "{since}; {count} emails wait in the outbox. Last error: {error}"
    ).format(
        since=format_time(outbox.failing_since, zone),
        count=format_count(outbox.waiting),
        error=outbox.last_error,
    )


def register(cli: click.Group) -> None:
    """Add the ``status`` command to ``cli``."""

    @cli.command(
        "status",
        help=_("Show per project the messages stored, the mailbox cursor and the sends per state."),
    )
    @project_option()
    @format_option()
    @click.pass_obj
    def status_command(app: AppContext, project_code: str | None, output_format: str) -> None:
        print_status(app, QueryOptions(project_code=project_code, output_format=output_format))
