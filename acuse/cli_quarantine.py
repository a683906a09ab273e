"""``acuse quarantine`` lists the messages that could not be read; ``acuse reprocess`` retries them.

Reprocessing reads a message again from the archive with the current configuration, so it is
the step after a fix or a configuration change (a raised limit, new trust roots). It then
reconciles the projects it touched, so that send states follow at once.
"""

from typing import Any

import click

from acuse.cli_queries import ROW_ID, format_option, iso_time, project_option
from acuse.context import AppContext
from acuse.labels import counted, format_time, message_class_label
from acuse.output import Column, OutputFormat, write_rows
from config.i18n import _, ngettext, pgettext
from config.settings import ProjectView
from monitor.archive import Archive
from monitor.quarantine import (
    QuarantinedMessage,
    ReprocessResult,
    list_quarantined,
    message_project,
    quarantined_ids,
    reprocess_message,
)
from monitor.reader_pool import shared_reader_pool
from reconcile.labels import quarantine_label, quarantine_reason_text
from reconcile.reconciliation import reconcile_project, release_evidence, subject_normalizer


def _quarantine_columns() -> list[Column]:
    return [
        Column("message_id", _("Message")),
        Column("project", _("Project")),
        Column("stored_at", _("Stored")),
        Column("from_address", _("From")),
        Column("subject", _("Subject")),
        Column("code", _("Reason")),
        Column("detail", _("Detail")),
    ]


def _quarantine_record(item: QuarantinedMessage, project: ProjectView) -> dict[str, Any]:
    return {
        "message_id": item.message_id,
        "project": item.project,
        "stored_at": iso_time(item.stored_at, project),
        "from_address": item.from_address,
        "subject": item.subject,
        "code": item.code,
        "detail": item.detail,
        "origin": item.origin,
        "location": item.location,
        "uid": item.uid,
        "sha256": item.sha256,
    }


def print_quarantine(app: AppContext, project_code: str | None, output_format: str) -> None:
    """Print the quarantined messages of the chosen projects with their reasons."""
    records: list[dict[str, Any]] = []
    human: list[dict[str, Any]] = []
    with app.database.session() as session:
        for project in app.projects(project_code):
            for item in list_quarantined(session, project.code):
                record = _quarantine_record(item, project)
                records.append(record)
                local_time = format_time(item.stored_at, project.timezone)
                label = quarantine_label(item.code, _)
                human.append({**record, "stored_at": local_time, "code": label})
    chosen = OutputFormat(output_format)
    columns = _quarantine_columns()
    if chosen is OutputFormat.CSV:
        columns = [Column(key, key) for key in records[0]] if records else columns
    write_rows(records, columns, chosen, human_rows=human)


def _chosen_messages(
    app: AppContext, message_ids: tuple[int, ...], all_quarantined: bool, project_code: str | None
) -> list[tuple[ProjectView, int]]:
    if bool(message_ids) == all_quarantined:
        message = _("Give message ids or --all-quarantined, not both and not neither.")
        raise click.UsageError(message)

    chosen: list[tuple[ProjectView, int]] = []
    with app.database.session() as session:
        if all_quarantined:
            for project in app.projects(project_code):
                chosen += [(project, number) for number in quarantined_ids(session, project.code)]
            return chosen
        for number in message_ids:
            code = message_project(session, number)
            if code is None or (project_code is not None and code != project_code):
                message = _("No stored message with id {id}: list them with 'acuse quarantine'.")
                raise click.UsageError(message.format(id=number))
            chosen.append((app.projects(code)[0], number))
    return chosen


def _print_result(result: ReprocessResult) -> None:
    added = ngettext("{count} added", "{count} added", result.added)
    updated = ngettext("{count} updated", "{count} updated", result.updated)
    removed = ngettext("{count} removed", "{count} removed", result.removed)
    # TRANSLATORS: {before} and {after} are message classes; the rest count pieces of evidence.
    click.echo(
        _(
            "Message {id} ({project}): {before} -> {after}; "
            "evidence: {added}, {updated}, {removed}."
        ).format(
            id=result.message_id,
            project=result.project,
            before=message_class_label(result.before),
            after=message_class_label(result.after),
            added=counted(added, result.added),
            updated=counted(updated, result.updated),
            removed=counted(removed, result.removed),
        )
    )
    if result.reason:
        reason = quarantine_reason_text(result.reason, _)
        click.echo(_("  Still quarantined: {reason}").format(reason=reason))


def reprocess(
    app: AppContext,
    message_ids: tuple[int, ...],
    all_quarantined: bool,
    project_code: str | None,
    reconcile: bool,
) -> list[ReprocessResult]:
    """Read the chosen messages again, print what changed, then reconcile their projects."""
    archive = Archive(app.settings.archive_path)
    chosen = _chosen_messages(app, message_ids, all_quarantined, project_code)
    results = []
    for project, number in chosen:
        result = reprocess_message(
            app.database,
            archive,
            project,
            number,
            reader=shared_reader_pool(project.limits),
            release=release_evidence,
        )
        _print_result(result)
        results.append(result)
    if not chosen:
        click.echo(_("No message to reprocess."))

    touched = {project.code: project for project, _number in chosen}
    if reconcile:
        for project in touched.values():
            reconcile_project(app.database, project, subject_normalizer(project))
    return results


def register(cli: click.Group) -> None:
    """Add the ``quarantine`` and ``reprocess`` commands to ``cli``."""

    @cli.command("quarantine", help=_("List the messages that could not be read, with reasons."))
    @project_option()
    @format_option()
    @click.pass_obj
    def quarantine_command(app: AppContext, project_code: str | None, output_format: str) -> None:
        print_quarantine(app, project_code, output_format)

    @cli.command(
        "reprocess",
        help=_(
            "Read stored messages again from the archive with the current configuration, "
            "and replace what they recorded."
        ),
    )
    @click.argument(
        "message_ids", metavar=pgettext("metavar", "[MESSAGE_ID]..."), nargs=-1, type=ROW_ID
    )
    @click.option(
        "--all-quarantined", is_flag=True, help=_("Every quarantined message instead of ids.")
    )
    @project_option()
    @click.option(
        "--no-reconcile", is_flag=True, help=_("Do not reconcile the projects afterwards.")
    )
    @click.pass_obj
    def reprocess_command(
        app: AppContext,
        message_ids: tuple[int, ...],
        all_quarantined: bool,
        project_code: str | None,
        no_reconcile: bool,
    ) -> None:
        reprocess(app, message_ids, all_quarantined, project_code, reconcile=not no_reconcile)
