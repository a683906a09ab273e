"""Storing the send log: idempotent imports, overlapping exports, identical rows, UTC times."""

from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlmodel import select

from config.database import Database
from config.settings import ProjectView, Settings
from reconcile import send_import
from reconcile.models import Send, SendImport, SendState
from reconcile.send_import import import_send_log
from reconcile.send_keys import OccurrenceCounter, next_send_key, next_send_keys
from reconcile.send_log import SendLogError, SendRow
from tests.send_log_samples import HEADERS, TITLE_ROWS, make_project, row, write_csv, write_xlsx

pytestmark = pytest.mark.both_engines

NOW = datetime(2024, 4, 10, 12, 0, tzinfo=UTC)
MARCH_ROWS = [
    row("ana@example.co", "05/03/2024 15:45", "Estado de cuenta marzo"),
    row("luis@example.co", "06/03/2024 09:10", "Estado de cuenta marzo", negocio="N-102"),
    row("sofia@example.co", "20/03/2024 16:00", "Carta de cobro", negocio="N-103"),
]
APRIL_ROWS = [
    row("marta@example.co", "02/04/2024 10:00", "Estado de cuenta abril", negocio="N-104"),
]


@pytest.fixture
def project(make_settings: Callable[..., Settings]) -> ProjectView:
    return make_project(make_settings)


def stored_sends(database: Database) -> list[Send]:
    with database.session() as session:
        return list(session.exec(select(Send).order_by(Send.id)))  # type: ignore[arg-type]


def stored_imports(database: Database) -> list[SendImport]:
    with database.session() as session:
        return list(session.exec(select(SendImport).order_by(SendImport.id)))  # type: ignore[arg-type]


def test_import_stores_sends(tmp_path: Path, database: Database, project: ProjectView) -> None:
    path = write_csv(tmp_path / "marzo.csv", [*TITLE_ROWS, HEADERS, *MARCH_ROWS])

    summary = import_send_log(database, path, project, NOW)

    sends = stored_sends(database)
    assert [send.recipient for send in sends] == [
        "ana@example.co",
        "luis@example.co",
        "sofia@example.co",
    ]
    assert sends[0].project == "TDP2"
    assert sends[0].import_id == summary.import_id
    assert sends[0].import_line == 5
    assert sends[0].imported_at == NOW
    assert sends[0].state is SendState.PENDING
    assert sends[0].lleida_copied is True
    assert len(sends[0].send_key) == 64


def test_import_summary_counts(tmp_path: Path, database: Database, project: ProjectView) -> None:
    path = write_csv(tmp_path / "marzo.csv", [HEADERS, *MARCH_ROWS, row("")])

    summary = import_send_log(database, path, project, NOW)

    assert summary.rows == 4
    assert summary.added == 3
    assert summary.already_known == 0
    assert summary.rejected == 1
    assert summary.path == path.resolve()


def test_import_recorded(tmp_path: Path, database: Database, project: ProjectView) -> None:
    path = write_csv(tmp_path / "marzo.csv", [HEADERS, *MARCH_ROWS, row("")])

    summary = import_send_log(database, path, project, NOW)

    (record,) = stored_imports(database)
    assert record.id == summary.import_id
    assert record.project == "TDP2"
    assert record.path == str(path.resolve())
    assert record.sha256 == summary.sha256
    assert record.imported_at == NOW
    assert (record.rows, record.added, record.already_known, record.rejected) == (4, 3, 0, 1)


def test_reimport_adds_nothing(tmp_path: Path, database: Database, project: ProjectView) -> None:
    path = write_csv(tmp_path / "marzo.csv", [HEADERS, *MARCH_ROWS])
    import_send_log(database, path, project, NOW)

    summary = import_send_log(database, path, project, NOW)

    assert summary.added == 0
    assert summary.already_known == 3
    assert len(stored_sends(database)) == 3
    assert len(stored_imports(database)) == 2


def test_overlapping_export_adds_new(
    tmp_path: Path, database: Database, project: ProjectView
) -> None:
    march = write_csv(tmp_path / "marzo.csv", [HEADERS, *MARCH_ROWS])
    later = write_csv(
        tmp_path / "20mar-10abr.csv", [*TITLE_ROWS, HEADERS, MARCH_ROWS[2], *APRIL_ROWS]
    )
    import_send_log(database, march, project, NOW)

    summary = import_send_log(database, later, project, NOW)

    assert summary.added == 1
    assert summary.already_known == 1
    assert [send.recipient for send in stored_sends(database)][-1] == "marta@example.co"
    assert len(stored_sends(database)) == 4


def test_xlsx_export_matches_csv_import(
    tmp_path: Path, database: Database, project: ProjectView
) -> None:
    csv_path = write_csv(tmp_path / "marzo.csv", [HEADERS, row(negocio="1234")])
    xlsx_row = row(negocio=1234, copied=True, sent_at=datetime(2024, 3, 5, 15, 45))  # noqa: DTZ001
    xlsx_path = write_xlsx(tmp_path / "marzo.xlsx", [*TITLE_ROWS, HEADERS, xlsx_row])
    import_send_log(database, csv_path, project, NOW)

    summary = import_send_log(database, xlsx_path, project, NOW)

    assert summary.added == 0
    assert summary.already_known == 1


def test_identical_rows_kept_as_two(
    tmp_path: Path, database: Database, project: ProjectView
) -> None:
    path = write_csv(tmp_path / "marzo.csv", [HEADERS, MARCH_ROWS[0], MARCH_ROWS[0]])

    summary = import_send_log(database, path, project, NOW)

    sends = stored_sends(database)
    assert summary.added == 2
    assert len(sends) == 2
    assert sends[0].send_key != sends[1].send_key


def test_identical_rows_reimported(
    tmp_path: Path, database: Database, project: ProjectView
) -> None:
    path = write_csv(tmp_path / "marzo.csv", [HEADERS, MARCH_ROWS[0], MARCH_ROWS[0]])
    import_send_log(database, path, project, NOW)

    summary = import_send_log(database, path, project, NOW)

    assert summary.added == 0
    assert summary.already_known == 2


def test_identical_rows_grow_in_later_export(
    tmp_path: Path, database: Database, project: ProjectView
) -> None:
    once = write_csv(tmp_path / "a.csv", [HEADERS, MARCH_ROWS[0]])
    three_times = write_csv(tmp_path / "b.csv", [HEADERS, *[MARCH_ROWS[0]] * 3])
    import_send_log(database, once, project, NOW)

    summary = import_send_log(database, three_times, project, NOW)

    assert summary.added == 2
    assert summary.already_known == 1


def test_send_id_identifies_send(tmp_path: Path, database: Database, project: ProjectView) -> None:
    headers = [*HEADERS, "Id envío"]
    first = write_csv(tmp_path / "a.csv", [headers, [*row(subject="Estado"), "E-1"]])
    edited = write_csv(tmp_path / "b.csv", [headers, [*row(subject="Estado (corregido)"), "E-1"]])
    import_send_log(database, first, project, NOW)

    summary = import_send_log(database, edited, project, NOW)

    assert summary.added == 0
    assert summary.already_known == 1


def test_send_id_per_recipient(tmp_path: Path, database: Database, project: ProjectView) -> None:
    headers = [*HEADERS, "Id envío"]
    path = write_csv(tmp_path / "a.csv", [headers, [*row("a@example.co; b@example.co"), "E-1"]])

    summary = import_send_log(database, path, project, NOW)

    assert summary.added == 2


def test_projects_kept_apart(
    tmp_path: Path, database: Database, make_settings: Callable[..., Settings]
) -> None:
    path = write_csv(tmp_path / "marzo.csv", [HEADERS, *MARCH_ROWS])
    import_send_log(database, path, make_project(make_settings), NOW)

    summary = import_send_log(database, path, make_project(make_settings, code="TDP3"), NOW)

    assert summary.added == 3
    assert len(stored_sends(database)) == 6


def test_bad_rows_reported_good_stored(
    tmp_path: Path, database: Database, project: ProjectView
) -> None:
    rows = [HEADERS, MARCH_ROWS[0], row(sent_at="mañana"), row("roto@; luis@example.co")]
    path = write_csv(tmp_path / "marzo.csv", rows)

    summary = import_send_log(database, path, project, NOW)

    assert [error.line for error in summary.errors] == [3, 4]
    assert "'mañana'" in summary.errors[0].reason
    assert "'roto@'" in summary.errors[1].reason
    assert [send.recipient for send in stored_sends(database)] == [
        "ana@example.co",
        "luis@example.co",
    ]


def test_errors_list_capped(tmp_path: Path, database: Database, project: ProjectView) -> None:
    rows = [HEADERS, *[row(sent_at="ayer") for _ in range(150)], MARCH_ROWS[0]]
    path = write_csv(tmp_path / "marzo.csv", rows)

    summary = import_send_log(database, path, project, NOW)

    assert summary.rejected == 150
    assert len(summary.errors) == send_import.MAX_REPORTED_ERRORS
    assert summary.errors_not_listed == 50
    assert summary.added == 1


def test_file_error_records_nothing(
    tmp_path: Path, database: Database, project: ProjectView
) -> None:
    path = write_csv(tmp_path / "marzo.csv", [["Correo cliente", "Asunto"], ["a@example.co", "x"]])

    with pytest.raises(SendLogError):
        import_send_log(database, path, project, NOW)

    assert stored_imports(database) == []


def test_times_stored_in_utc(tmp_path: Path, database: Database, project: ProjectView) -> None:
    rows = [
        HEADERS,
        row(sent_at="05/03/2024 3:45 p. m."),
        row("b@example.co", "2024-03-05T23:30:00+01:00"),
    ]
    path = write_csv(tmp_path / "marzo.csv", rows)

    import_send_log(database, path, project, NOW)

    # Read the column without the model's type, to see what the engine itself stores.
    query = "SELECT sent_at FROM send ORDER BY id"
    if database.dialect == "postgresql":
        query = (
            "SELECT to_char(sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') "
            "FROM send ORDER BY id"
        )
    with database.session() as session:
        raw = session.connection().execute(text(query)).all()
    assert [value for (value,) in raw] == [
        "2024-03-05 20:45:00.000000",
        "2024-03-05 22:30:00.000000",
    ]


def test_times_read_back_aware(tmp_path: Path, database: Database, project: ProjectView) -> None:
    path = write_csv(tmp_path / "marzo.csv", [HEADERS, row(sent_at="05/03/2024 15:45")])

    import_send_log(database, path, project, NOW)

    (send,) = stored_sends(database)
    assert send.sent_at == datetime(2024, 3, 5, 20, 45, tzinfo=UTC)
    assert send.sent_at.utcoffset() is not None


def test_multi_address_rows_across_batches(
    tmp_path: Path, database: Database, project: ProjectView, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(send_import, "BATCH_SIZE", 2)
    rows = [HEADERS, row("a@example.co; b@example.co; c@example.co"), row("d@example.co")]
    path = write_csv(tmp_path / "marzo.csv", rows)

    summary = import_send_log(database, path, project, NOW)

    assert summary.rows == 2
    assert summary.added == 4
    assert stored_imports(database)[0].added == 4


def test_interrupted_import_rerun(
    tmp_path: Path, database: Database, project: ProjectView, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(send_import, "BATCH_SIZE", 2)
    path = write_csv(tmp_path / "marzo.csv", [HEADERS, *MARCH_ROWS, *APRIL_ROWS])
    real_insert = send_import._insert_sends
    calls: list[int] = []

    def fail_second_batch(*args: Any) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk unplugged")
        return real_insert(*args)

    monkeypatch.setattr(send_import, "_insert_sends", fail_second_batch)
    with pytest.raises(OSError, match="disk unplugged"):
        import_send_log(database, path, project, NOW)
    monkeypatch.setattr(send_import, "_insert_sends", real_insert)

    interrupted = stored_imports(database)[0]
    summary = import_send_log(database, path, project, NOW)

    assert (interrupted.rows, interrupted.added) == (2, 2)
    assert len(stored_sends(database)) == 4
    assert summary.added == 2
    assert summary.already_known == 2


def test_postgresql_insert_skips_conflicts() -> None:
    statement = send_import._insert_statement("postgresql")

    sql = str(statement.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]

    assert "ON CONFLICT (project, send_key) DO NOTHING" in sql
    assert "RETURNING send.id" in sql


def test_batch_keys_match_row_keys() -> None:
    sent = datetime(2024, 3, 5, 20, 45, tzinfo=UTC)
    same = SendRow(line=2, recipient="ana@example.co", sent_at=sent, subject="Estado")
    other = SendRow(line=3, recipient="luis@example.co", sent_at=sent, subject="Estado")
    with_id = SendRow(
        line=4, recipient="ana@example.co", sent_at=sent, subject="Estado", external_id="E-1"
    )
    rows = [same, other, same, with_id, same]

    with closing(OccurrenceCounter()) as one_by_one:
        expected = [next_send_key(row, one_by_one) for row in rows]
    with closing(OccurrenceCounter()) as batched:
        keys = next_send_keys(rows[:2], batched) + next_send_keys(rows[2:], batched)

    assert keys == expected
    assert len(set(keys)) == len(rows)
