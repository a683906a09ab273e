"""Pipeline commands: ``import-sends``, ``ingest``, ``poll`` and ``reconcile``."""

from datetime import datetime
from pathlib import Path

import click

from acuse.context import AppContext
from acuse.labels import counted, format_count, state_label
from acuse.polling import MailboxPoller
from acuse.progress import progress_bar
from config.database import Database, utcnow
from config.errors import AcuseError
from config.i18n import _, ngettext, pgettext
from config.settings import ProjectView
from monitor.archive import Archive
from monitor.directory_source import DirectorySource
from monitor.ingest import IncomingMessage, IngestCounts, Ingestor
from reconcile.models import SendState
from reconcile.reconciliation import (
    ReconcileSummary,
    count_states,
    reconcile_project,
    subject_normalizer,
)
from reconcile.send_import import ImportSummary, import_send_log

EXIT_RUNTIME = 3


def _ingest_summary(counts: IngestCounts) -> str:
    seen = ngettext("{count} message read", "{count} messages read", counts.seen)
    stored = ngettext("{count} stored", "{count} stored", counts.stored)
    evidence = ngettext("{count} evidence", "{count} evidence", counts.evidence)
    unrelated = ngettext("{count} unrelated", "{count} unrelated", counts.unrelated)
    quarantined = ngettext("{count} quarantined", "{count} quarantined", counts.quarantined)
    known = ngettext("{count} already stored", "{count} already stored", counts.already_stored)
    # TRANSLATORS: each field is a count with its noun, e.g. "14 messages read: 14 stored (...)".
    return _("{seen}: {stored} ({evidence}, {unrelated}, {quarantined}), {known}.").format(
        seen=counted(seen, counts.seen),
        stored=counted(stored, counts.stored),
        evidence=counted(evidence, counts.evidence),
        unrelated=counted(unrelated, counts.unrelated),
        quarantined=counted(quarantined, counts.quarantined),
        known=counted(known, counts.already_stored),
    )


def print_import_summary(summary: ImportSummary) -> None:
    """Print what a send-log import stored, and each rejected row on standard error."""
    rows = ngettext("{count} row read", "{count} rows read", summary.rows)
    added = ngettext("{count} new send", "{count} new sends", summary.added)
    known = ngettext("{count} already known", "{count} already known", summary.already_known)
    rejected = ngettext("{count} row rejected", "{count} rows rejected", summary.rejected)
    # TRANSLATORS: {rows}, {added}, {known} and {rejected} are counts with their nouns.
    click.echo(
        _("{project}: {rows} from {path}: {added}, {known}, {rejected}.").format(
            project=summary.project,
            rows=counted(rows, summary.rows),
            path=summary.path,
            added=counted(added, summary.added),
            known=counted(known, summary.already_known),
            rejected=counted(rejected, summary.rejected),
        )
    )
    for error in summary.errors:
        click.echo(f"  {error}", err=True)
    if summary.errors_not_listed:
        more = ngettext(
            "  ... and {count} more rejected row.",
            "  ... and {count} more rejected rows.",
            summary.errors_not_listed,
        )
        more = counted(more, summary.errors_not_listed)
        click.echo(more, err=True)


def ingest_path(app: AppContext, path: Path, project: ProjectView) -> IngestCounts:
    """Ingest the message files at ``path`` into ``project`` and print what was stored."""
    ingestor = Ingestor(app.database, Archive(app.settings.archive_path), project)
    messages = (
        IncomingMessage(raw=message.raw, origin="file", location=message.location)
        for message in DirectorySource(path)
    )
    with progress_bar(_("Ingesting messages")) as advance:
        counts = ingestor.ingest_all(
            messages, batch_size=app.settings.defaults.fetch_batch, progress=advance
        )
    click.echo(f"{project.code}: {_ingest_summary(counts)}")
    return counts


def reconcile_with_progress(
    app: AppContext, project: ProjectView, as_of: datetime | None = None
) -> ReconcileSummary:
    """Run a reconciliation pass of ``project``, with a progress bar on a terminal."""
    description = _("Reconciling {project}").format(project=project.code)
    with progress_bar(description) as advance:
        return reconcile_project(
            app.database, project, subject_normalizer(project), as_of=as_of, progress=advance
        )


def print_reconcile_summary(database: Database, summary: ReconcileSummary) -> None:
    """Print what a reconciliation pass changed and the sends per state."""
    with database.session() as session:
        states = count_states(session, summary.project)
    counts = ", ".join(
        f"{state_label(state)}: {format_count(states[state])}"
        for state in SendState
        if states.get(state)
    )
    matched = ngettext("{count} new match", "{count} new matches", summary.matched)
    changes = ngettext("{count} state change", "{count} state changes", summary.state_changes)
    # TRANSLATORS: {matched} and {changes} are counts with their nouns; {counts} lists
    # "state: number" pairs.
    click.echo(
        _("{project}: {matched}, {changes}. {counts}").format(
            project=summary.project,
            matched=counted(matched, summary.matched),
            changes=counted(changes, summary.state_changes),
            counts=counts or _("no sends"),
        )
    )


def register(cli: click.Group) -> None:
    """Add the pipeline commands to ``cli``."""

    @cli.command(
        "import-sends", help=_("Import a send log exported from PACO (CSV or XLSX) into a project.")
    )
    @click.argument(
        "path",
        metavar=pgettext("metavar", "PATH"),
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
    )
    @click.option(
        "--project",
        "project_code",
        required=True,
        metavar=pgettext("metavar", "CODE"),
        help=_("The project the sends belong to."),
    )
    @click.pass_obj
    def import_sends_command(app: AppContext, path: Path, project_code: str) -> None:
        project = app.projects(project_code)[0]
        with progress_bar(_("Importing sends")) as advance:
            summary = import_send_log(app.database, path, project, utcnow(), progress=advance)
        print_import_summary(summary)
        if summary.rejected and not summary.added and not summary.already_known:
            message = _(
                "Error: no row of {path} could be stored: fix the rows listed above and import "
                "the file again."
            ).format(path=path)
            click.echo(message, err=True)
            raise SystemExit(EXIT_RUNTIME)

    @cli.command(
        "ingest",
        help=_("Ingest evidence from a .eml file, a folder of them, an mbox file or a Maildir."),
    )
    @click.argument(
        "path", metavar=pgettext("metavar", "PATH"), type=click.Path(exists=True, path_type=Path)
    )
    @click.option(
        "--project",
        "project_code",
        required=True,
        metavar=pgettext("metavar", "CODE"),
        help=_("The project the evidence belongs to."),
    )
    @click.pass_obj
    def ingest_command(app: AppContext, path: Path, project_code: str) -> None:
        ingest_path(app, path, app.projects(project_code)[0])

    @cli.command(
        "poll", help=_("Fetch new evidence from every configured mailbox once, then reconcile.")
    )
    @click.option(
        "--project",
        "project_code",
        metavar=pgettext("metavar", "CODE"),
        help=_("Only this project (its code)."),
    )
    @click.option(
        "--no-reconcile", is_flag=True, help=_("Only fetch and store; do not reconcile afterwards.")
    )
    @click.pass_obj
    def poll_command(app: AppContext, project_code: str | None, no_reconcile: bool) -> None:
        settings = app.settings
        poller = MailboxPoller(settings, app.database, Archive(settings.archive_path))
        failures = 0
        for project in app.projects(project_code):
            if project.settings.mailbox is None:
                continue
            try:
                with progress_bar(_("Polling {project}").format(project=project.code)) as advance:
                    result = poller.poll_once(project, progress=advance)
            except AcuseError as exc:
                failures += 1
                click.echo(_("Error: {message}").format(message=exc), err=True)
                continue
            click.echo(f"{project.code} ({result.folder}): {_ingest_summary(result.counts)}")
            if not no_reconcile:
                reconcile_with_progress(app, project)
        if failures:
            raise SystemExit(EXIT_RUNTIME)

    @cli.command("reconcile", help=_("Match sends to evidence and store each send's state."))
    @click.option(
        "--project",
        "project_code",
        metavar=pgettext("metavar", "CODE"),
        help=_("Only this project (its code)."),
    )
    @click.option(
        "--as-of",
        "as_of",
        metavar="ISO8601",
        help=_("Judge deadlines at this time instead of now, e.g. 2026-11-03T18:00-05:00."),
    )
    @click.pass_obj
    def reconcile_command(app: AppContext, project_code: str | None, as_of: str | None) -> None:
        when = app.parse_as_of(as_of)
        for project in app.projects(project_code):
            print_reconcile_summary(app.database, reconcile_with_progress(app, project, when))
