"""Progress of long work: the counts library code reports, and the bar drawn only on a terminal."""

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acuse import progress
from acuse.progress import progress_bar
from config.database import Database
from config.settings import ProjectView, Settings
from monitor.archive import Archive
from monitor.ingest import IncomingMessage, Ingestor
from reconcile import send_import
from reconcile.reconciliation import reconcile_project
from reconcile.send_import import import_send_log
from tests.send_log_samples import HEADERS, make_project, row, write_csv
from tests.test_imap_source import evidence_message
from tests.test_reconciliation import SENT, add_evidence, add_send

NOW = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)


class TerminalStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def project(make_settings: Callable[..., Settings]) -> ProjectView:
    return make_project(make_settings)


def test_import_reports_each_batch(
    tmp_path: Path, database: Database, project: ProjectView, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(send_import, "BATCH_SIZE", 2)
    rows = [row(f"cliente{number}@example.co") for number in range(5)]
    path = write_csv(tmp_path / "envios.csv", [HEADERS, *rows, row("")])
    reported: list[int] = []

    import_send_log(database, path, project, NOW, progress=reported.append)

    assert reported == [2, 2, 2]


def test_ingest_reports_each_batch(
    tmp_path: Path, database: Database, project: ProjectView
) -> None:
    ingestor = Ingestor(database, Archive(tmp_path / "archive"), project)
    messages = [
        IncomingMessage(raw=evidence_message(number), origin="file", location=f"{number}.eml")
        for number in range(5)
    ]
    reported: list[int] = []

    ingestor.ingest_all(messages, batch_size=2, progress=reported.append)

    assert reported == [2, 2, 1]


def test_reconcile_reports_open_sends(database: Database, project: ProjectView) -> None:
    add_send(database)
    add_send(database, recipient="luis@example.com")
    add_evidence(database)
    reported: list[int] = []

    reconcile_project(
        database, project, str.casefold, as_of=SENT + timedelta(hours=1), progress=reported.append
    )

    assert sum(reported) == 1


def test_bar_silent_off_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", stream)

    with progress_bar("Importing sends") as advance:
        advance(10)

    assert stream.getvalue() == ""


def test_bar_drawn_on_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = TerminalStream()
    monkeypatch.setattr(progress.sys, "stderr", stream)

    with progress_bar("Importing sends", total=20) as advance:
        advance(10)

    assert "Importing sends" in stream.getvalue()
