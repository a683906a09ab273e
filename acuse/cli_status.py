"""``acuse status``: per project, the messages stored, the cursor and the sends per state."""

from typing import Any

import click

from acuse.cli_queries import QueryOptions, format_option, iso_time, project_option
from acuse.context import AppContext
from acuse.labels import format_count, format_time, state_label
from acuse.output import Column, OutputFormat, write_rows
from config.database import utcnow
from config.i18n import _
from config.settings import ProjectView
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
        for project in app.projects(options.project_code):
            status = project_status(session, project, now)
            records.append(_status_record(status, project))
            rows.append(_status_row(status, project))

    chosen = OutputFormat(options.output_format)
    columns = _status_columns()
    if chosen is OutputFormat.CSV:
        columns = [Column(key, key) for key in records[0]] if records else columns
    write_rows(records, columns, chosen, human_rows=rows)


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
