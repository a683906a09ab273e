"""``acuse status``: per project and mailbox, poll health, messages stored and sends per state.

Each mailbox also shows the daemon instance that holds its lease and until when, and
``--instances`` lists the instances that share the database instead.
"""

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlmodel import Session

from acuse.cli_queries import QueryOptions, format_option, iso_time, project_option
from acuse.context import AppContext
from acuse.labels import format_count, format_time, state_label
from acuse.output import Column, OutputFormat, write_rows
from config.database import utcnow
from config.i18n import _, ngettext
from config.settings import ProjectView, Settings
from monitor.leases import Instance, MailboxLease, instances, mailbox_leases
from monitor.mailbox_health import load_health
from monitor.models import MailboxHealth
from reconcile.alert_queries import OutboxHealth, open_alert_count, outbox_health
from reconcile.alert_routing import missing_smtp_warning
from reconcile.models import SendState
from reconcile.queries import ProjectStatus, count_sends_after, project_status
from reconcile.send_log_failures import SendLogHealth, send_log_health

_COUNTS = ("messages", "evidence", "unrelated", "quarantined", "orphans")


def _health_for(project: ProjectView, health: list[MailboxHealth]) -> MailboxHealth | None:
    """The poll record of the project's configured folder, or of any folder it was polled in."""
    mailbox = project.settings.mailbox
    for record in health:
        if mailbox is not None and record.folder == mailbox.folder:
            return record
    return health[0] if health else None


def _health_record(health: MailboxHealth | None, project: ProjectView) -> dict[str, Any]:
    return {
        "last_success_at": iso_time(health.last_success_at if health else None, project),
        "last_error": health.last_error if health else None,
        "last_error_at": iso_time(health.last_error_at if health else None, project),
        "consecutive_failures": health.consecutive_failures if health else 0,
        "messages_stored": health.messages_stored if health else 0,
    }


def _live_lease(
    project: ProjectView, leases: dict[tuple[str, str], MailboxLease], now: datetime
) -> MailboxLease | None:
    """Return the unexpired lease on the project's mailbox, or None when it is free."""
    mailbox = project.settings.mailbox
    if mailbox is None:
        return None
    lease = leases.get((project.code, mailbox.folder))
    if lease is None or lease.holder is None or lease.expires_at is None:
        return None
    return lease if lease.expires_at > now else None


def _lease_record(lease: MailboxLease | None, project: ProjectView) -> dict[str, Any]:
    return {
        "lease_holder": lease.holder if lease else None,
        "lease_expires_at": iso_time(lease.expires_at if lease else None, project),
    }


def _status_record(
    status: ProjectStatus, project: ProjectView, health: MailboxHealth | None = None
) -> dict[str, Any]:
    """One project's figures with stable English keys; send counts are keyed by state code."""
    cursor = status.cursors[0] if status.cursors else None
    last_reconcile = status.last_reconcile.finished_at if status.last_reconcile else None
    mailbox = project.settings.mailbox
    return {
        "project": project.code,
        "name": project.name,
        "mailbox": f"{mailbox.username}@{mailbox.host}" if mailbox else None,
        **_health_record(health, project),
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


def _status_row(
    status: ProjectStatus, project: ProjectView, health: MailboxHealth | None
) -> dict[str, Any]:
    row = _status_record(status, project, health)
    for key in (*_COUNTS, "consecutive_failures", *(state.value for state in SendState)):
        row[key] = format_count(row[key])
    row["last_success_at"] = format_time(
        health.last_success_at if health else None, project.timezone
    )
    row["last_error"] = _error_cell(health)
    row["last_message_at"] = format_time(status.last_message_at, project.timezone)
    last_reconcile = status.last_reconcile.finished_at if status.last_reconcile else None
    row["last_reconcile_at"] = format_time(last_reconcile, project.timezone)
    return row


def _error_cell(health: MailboxHealth | None) -> str:
    """The last error while the mailbox is failing; empty once it recovered."""
    if health is None or not health.consecutive_failures or health.last_error is None:
        return ""
    return health.last_error


def _status_columns() -> list[Column]:
    return [
        Column("project", _("Project")),
        Column("folder", _("Folder")),
        Column("lease_holder", _("Polled by")),
        Column("lease_expires_at", _("Lease until")),
        Column("last_success_at", _("Last successful poll")),
        Column("consecutive_failures", _("Failures in a row")),
        Column("last_error", _("Last error")),
        Column("messages", _("Messages")),
        Column("evidence", _("Evidence")),
        Column("quarantined", _("Quarantined")),
        Column("orphans", _("Orphans")),
        Column("open_alerts", _("Open alerts")),
        Column("last_message_at", _("Last message")),
        Column("last_reconcile_at", _("Last reconciliation")),
        Column("last_send_log_import_at", _("Last send-log import")),
        Column("send_log_failures", _("Send-log files failed")),
        *(Column(state.value, state_label(state)) for state in SendState),
    ]


def print_status(app: AppContext, options: QueryOptions) -> None:
    """Print the status of the chosen projects."""
    now = utcnow()
    records: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    with app.database.session() as session:
        outbox = outbox_health(session)
        leases = {(lease.project, lease.folder): lease for lease in mailbox_leases(session)}
        for project in app.projects(options.project_code):
            status = project_status(session, project, now)
            health = _health_for(project, load_health(session, project.code))
            alerts = _alert_fields(session, outbox, project)
            lease = _live_lease(project, leases, now)
            send_log = send_log_health(session, project.code)
            send_log_fields = _send_log_fields(send_log, project)
            send_log_fields["sends_dated_later"] = later = count_sends_after(session, project, now)
            if later:
                warnings.append(_sends_dated_later_line(project, later))
            records.append(
                {
                    **_status_record(status, project, health),
                    **_lease_record(lease, project),
                    **alerts,
                    **send_log_fields,
                }
            )
            row = _status_row(status, project, health)
            rows.append(
                {
                    **row,
                    "lease_holder": lease.holder if lease else "",
                    "lease_expires_at": format_time(
                        lease.expires_at if lease else None, project.timezone
                    ),
                    "open_alerts": alerts["open_alerts"],
                    **_send_log_cells(send_log, project),
                }
            )
            warnings.extend(_send_log_failure_lines(send_log, project))

    chosen = OutputFormat(options.output_format)
    columns = _status_columns()
    if chosen is OutputFormat.CSV and records:
        columns = [Column(key, key) for key in records[0] if key != "send_log_failed_files"]
    write_rows(records, columns, chosen, human_rows=rows)
    if chosen is OutputFormat.TABLE and outbox.delivery_failing is not None:
        click.echo(_delivery_failing_line(outbox, app.settings), err=True)
    smtp_warning = missing_smtp_warning(app.settings)
    if smtp_warning is not None:
        warnings.append(_("Warning: {warning}").format(warning=smtp_warning))
    if chosen is OutputFormat.TABLE:
        for line in warnings:
            click.echo(line, err=True)


def _send_log_fields(health: SendLogHealth, project: ProjectView) -> dict[str, Any]:
    """Return the project's last send-log import and its failed watched files, for scripts."""
    return {
        "last_send_log_import_at": iso_time(health.last_import_at, project),
        "last_send_log_import_path": health.last_import_path,
        "send_log_failures": len(health.failures),
        "send_log_failed_files": [
            {
                "path": failure.path,
                "failed_at": iso_time(failure.failed_at, project),
                "reason": failure.reason,
            }
            for failure in health.failures
        ],
    }


def _send_log_cells(health: SendLogHealth, project: ProjectView) -> dict[str, Any]:
    return {
        "last_send_log_import_at": format_time(health.last_import_at, project.timezone),
        "send_log_failures": format_count(len(health.failures)),
    }


def _sends_dated_later_line(project: ProjectView, count: int) -> str:
    return _(
        "Warning: {project}: {count} sends are dated later than now, so listings leave them "
        "out until then. List them with: acuse sends --project {project} --as-of <a later time>"
    ).format(project=project.code, count=format_count(count))


def _send_log_failure_lines(health: SendLogHealth, project: ProjectView) -> list[str]:
    return [
        _(
            "Warning: {project}: send log {path} failed to import at {time} and is skipped "
            "until it changes: {reason}"
        ).format(
            project=project.code,
            path=failure.path,
            time=format_time(failure.failed_at, project.timezone),
            reason=failure.reason,
        )
        for failure in health.failures
    ]


def print_instances(app: AppContext, output_format: str) -> None:
    """Print the daemon instances that share the database and are alive now."""
    now = utcnow()
    zone = ZoneInfo(app.settings.defaults.timezone)
    with app.database.session() as session:
        live = [instance for instance in instances(session) if instance.expires_at > now]
    records = [_instance_record(instance, zone) for instance in live]
    rows = [
        {
            **record,
            "pid": format_count(instance.pid),
            "started_at": format_time(instance.started_at, zone),
            "expires_at": format_time(instance.expires_at, zone),
        }
        for record, instance in zip(records, live, strict=True)
    ]
    columns = [
        Column("instance", _("Instance")),
        Column("host", _("Host")),
        Column("pid", _("PID")),
        Column("started_at", _("Started")),
        Column("expires_at", _("Alive until")),
    ]
    write_rows(records, columns, OutputFormat(output_format), human_rows=rows)


def _instance_record(instance: Instance, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "instance": instance.id,
        "host": instance.host,
        "pid": instance.pid,
        "started_at": instance.started_at.astimezone(zone).isoformat(),
        "expires_at": instance.expires_at.astimezone(zone).isoformat(),
    }


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
    return ngettext(
        "Warning: alert_delivery_failing: the SMTP server has refused alert emails since "
        "{since}; {count} email waits in the outbox. Last error: {error}",
        "Warning: alert_delivery_failing: the SMTP server has refused alert emails since "
        "{since}; {count} emails wait in the outbox. Last error: {error}",
        outbox.waiting,
    ).format(
        since=format_time(outbox.failing_since, zone),
        count=format_count(outbox.waiting),
        error=outbox.last_error,
    )


def register(cli: click.Group) -> None:
    """Add the ``status`` command to ``cli``."""

    @cli.command(
        "status",
        help=_(
            "Show per project and mailbox the last successful poll, the last error, failures "
            "in a row, the messages stored and quarantined, the sends per state, and the "
            "daemon instance that polls each mailbox."
        ),
    )
    @project_option()
    @format_option()
    @click.option(
        "--instances",
        "list_instances",
        is_flag=True,
        help=_("List the live daemon instances that share the database instead."),
    )
    @click.pass_obj
    def status_command(
        app: AppContext, project_code: str | None, output_format: str, list_instances: bool
    ) -> None:
        if list_instances:
            print_instances(app, output_format)
            return
        print_status(app, QueryOptions(project_code=project_code, output_format=output_format))
