"""``acuse archive verify``: re-hash every archived message the ledger names, report bad ones.

Exits with 1 when a file is missing or altered. Files that no ledger row names (left by a
crash between the archive write and the ledger commit, for a message that later vanished from
the server) are counted and listed, but are no problem: acuse never deletes evidence.
"""

import sys
from collections.abc import Iterator
from typing import Any

import click
from sqlalchemy import select
from sqlmodel import col

from acuse.cli_queries import format_option
from acuse.context import AppContext
from acuse.labels import archive_problem_label, counted, format_count
from acuse.output import Column, OutputFormat, write_rows
from config.i18n import _, ngettext
from monitor.archive import Archive, ArchiveProblem
from monitor.models import StoredMessage

EXIT_PROBLEMS = 1


def _ledger_hashes(app: AppContext) -> Iterator[str]:
    query = select(col(StoredMessage.sha256)).distinct().order_by(col(StoredMessage.sha256))
    with app.database.session() as session:
        yield from session.execute(query.execution_options(yield_per=1000)).scalars()


def _problem_record(problem: ArchiveProblem) -> dict[str, Any]:
    return {
        "sha256": problem.sha256,
        "problem": problem.kind.value,
        "path": str(problem.path),
        "actual_sha256": problem.actual_sha256,
    }


def _problem_columns() -> list[Column]:
    return [
        Column("sha256", _("Message hash")),
        Column("problem", _("Problem")),
        Column("path", _("File")),
        Column("actual_sha256", _("Hash of its content")),
    ]


def verify_archive(app: AppContext, output_format: str) -> int:
    """Verify the archive against the ledger, print the problems; return how many there were."""
    archive = Archive(app.settings.archive_path)
    checked = 0
    known: set[str] = set()

    def expected() -> Iterator[str]:
        nonlocal checked
        for sha256 in _ledger_hashes(app):
            checked += 1
            known.add(sha256)
            yield sha256

    found = list(archive.verify(expected()))
    problems = [_problem_record(problem) for problem in found]
    human = [
        {**record, "problem": archive_problem_label(problem.kind)}
        for record, problem in zip(problems, found, strict=True)
    ]
    untracked = [sha256 for sha256 in archive.stored_hashes() if sha256 not in known]

    chosen = OutputFormat(output_format)
    if problems or chosen is not OutputFormat.TABLE:
        write_rows(problems, _problem_columns(), chosen, human_rows=human)
    if chosen is OutputFormat.TABLE:
        _print_summary(checked, len(problems), untracked)
    return len(problems)


def _print_summary(checked: int, problems: int, untracked: list[str]) -> None:
    click.echo(
        ngettext(
            "{count} archived message checked: {problems} missing or altered.",
            "{count} archived messages checked: {problems} missing or altered.",
            checked,
        ).format(count=format_count(checked), problems=format_count(problems))
    )
    if untracked:
        click.echo(
            counted(
                ngettext(
                    "{count} archived file belongs to no ledger row (kept, never deleted):",
                    "{count} archived files belong to no ledger row (kept, never deleted):",
                    len(untracked),
                ),
                len(untracked),
            )
        )
        for sha256 in untracked:
            click.echo(f"  {sha256}")


def register(cli: click.Group) -> None:
    """Add the ``archive`` command group to ``cli``."""

    @cli.group("archive", help=_("Check the archive of raw messages."))
    def archive_group() -> None:
        pass

    @archive_group.command(
        "verify",
        help=_(
            "Re-hash every archived message the ledger names and report missing or altered "
            "files; exit with 1 when there is any."
        ),
    )
    @format_option()
    @click.pass_obj
    def verify_command(app: AppContext, output_format: str) -> None:
        if verify_archive(app, output_format):
            sys.exit(EXIT_PROBLEMS)
