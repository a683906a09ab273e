"""The daemon's watched send-log files: new and changed exports are imported, the rest skipped."""

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import select

from acuse.send_log_watch import SendLogImporter
from config.database import Database
from config.settings import ProjectView, Settings, project_view
from reconcile.models import SendImport, SendLogFailure
from tests.send_log_samples import HEADERS, row, write_csv

pytestmark = pytest.mark.both_engines

MARCH = [row("ana@example.co", "05/03/2024 15:45", "Estado de cuenta marzo")]
APRIL = [row("marta@example.co", "02/04/2024 10:00", "Estado de cuenta abril", negocio="N-104")]


def settled(path: Path) -> Path:
    """Date the file a minute back, as an export finished earlier."""
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


def watching(make_settings: Callable[..., Settings], pattern: str) -> tuple[Settings, ProjectView]:
    settings = make_settings(
        projects=[{"code": "TDP2", "name": "Torres del Parque", "send_log": {"path": pattern}}]
    )
    return settings, project_view(settings, "TDP2")


def import_count(database: Database) -> int:
    with database.session() as session:
        return len(session.exec(select(SendImport)).all())


def test_new_files_imported(
    tmp_path: Path, make_settings: Callable[..., Settings], database: Database
) -> None:
    (tmp_path / "envios").mkdir()
    settled(write_csv(tmp_path / "envios" / "marzo.csv", [HEADERS, *MARCH]))
    settled(write_csv(tmp_path / "envios" / "abril.csv", [HEADERS, *APRIL]))
    settings, project = watching(make_settings, "envios/*.csv")

    summaries = SendLogImporter(settings, database).import_new(project)

    assert sorted(Path(summary.path).name for summary in summaries) == ["abril.csv", "marzo.csv"]
    assert [summary.added for summary in summaries] == [1, 1]


def test_same_content_skipped(
    tmp_path: Path, make_settings: Callable[..., Settings], database: Database
) -> None:
    (tmp_path / "envios").mkdir()
    first = settled(write_csv(tmp_path / "envios" / "marzo.csv", [HEADERS, *MARCH]))
    settings, project = watching(make_settings, "envios/*.csv")
    importer = SendLogImporter(settings, database)
    importer.import_new(project)

    settled(Path(shutil.copy(first, tmp_path / "envios" / "marzo-copia.csv")))
    again = importer.import_new(project)

    assert again == []
    assert import_count(database) == 1


def test_changed_file_imported_again(
    tmp_path: Path, make_settings: Callable[..., Settings], database: Database
) -> None:
    (tmp_path / "envios").mkdir()
    path = settled(write_csv(tmp_path / "envios" / "cartera.csv", [HEADERS, *MARCH]))
    settings, project = watching(make_settings, "envios/*.csv")
    importer = SendLogImporter(settings, database)
    importer.import_new(project)

    settled(write_csv(path, [HEADERS, *MARCH, *APRIL]))
    again = importer.import_new(project)

    assert again[0].added == 1
    assert again[0].already_known == 1


def test_fresh_file_waits(
    tmp_path: Path, make_settings: Callable[..., Settings], database: Database
) -> None:
    (tmp_path / "envios").mkdir()
    write_csv(tmp_path / "envios" / "marzo.csv", [HEADERS, *MARCH])
    settings, project = watching(make_settings, "envios/*.csv")

    summaries = SendLogImporter(settings, database).import_new(project)

    assert summaries == []
    assert import_count(database) == 0


def test_stop_between_files(
    tmp_path: Path, make_settings: Callable[..., Settings], database: Database
) -> None:
    (tmp_path / "envios").mkdir()
    settled(write_csv(tmp_path / "envios" / "marzo.csv", [HEADERS, *MARCH]))
    settings, project = watching(make_settings, "envios/*.csv")

    summaries = SendLogImporter(settings, database).import_new(project, lambda: False)

    assert summaries == []


def test_bad_file_skipped_rest_imported(
    tmp_path: Path, make_settings: Callable[..., Settings], database: Database
) -> None:
    (tmp_path / "logs").mkdir()
    sent_at = HEADERS.index("Fecha de envío")
    without_date = [
        [cell for index, cell in enumerate(cells) if index != sent_at]
        for cells in [HEADERS, *MARCH]
    ]
    bad = settled(write_csv(tmp_path / "logs" / "aa-bad.csv", without_date))
    settled(write_csv(tmp_path / "logs" / "zz-new.csv", [HEADERS, *APRIL]))
    os.utime(bad, (time.time() - 120, time.time() - 120))
    settings, project = watching(make_settings, "logs/*.csv")

    summaries = SendLogImporter(settings, database).import_new(project)

    assert [Path(summary.path).name for summary in summaries] == ["zz-new.csv"]
    (failure,) = stored_failures(database)
    assert failure.path == str(bad.resolve())
    assert "Fecha de envío" in failure.reason


def test_failed_file_waits_for_change(
    tmp_path: Path, make_settings: Callable[..., Settings], database: Database
) -> None:
    (tmp_path / "logs").mkdir()
    bad = settled(write_csv(tmp_path / "logs" / "cartera.csv", [["Nombre"], ["Ana"]]))
    settings, project = watching(make_settings, "logs/*.csv")
    importer = SendLogImporter(settings, database)
    importer.import_new(project)
    (first,) = stored_failures(database)

    unchanged = importer.import_new(project)
    (second,) = stored_failures(database)
    settled(write_csv(bad, [HEADERS, *MARCH]))
    fixed = importer.import_new(project)

    assert unchanged == []
    assert second.failed_at == first.failed_at
    assert [summary.added for summary in fixed] == [1]
    assert stored_failures(database) == []


def stored_failures(database: Database) -> list[SendLogFailure]:
    with database.session() as session:
        return list(session.exec(select(SendLogFailure)).all())


def test_removed_file_failure_forgotten(
    tmp_path: Path, make_settings: Callable[..., Settings], database: Database
) -> None:
    (tmp_path / "logs").mkdir()
    bad = settled(write_csv(tmp_path / "logs" / "cartera.csv", [["Nombre"], ["Ana"]]))
    settings, project = watching(make_settings, "logs/*.csv")
    importer = SendLogImporter(settings, database)
    importer.import_new(project)
    recorded = len(stored_failures(database))

    bad.unlink()
    importer.import_new(project)

    assert recorded == 1
    assert stored_failures(database) == []
