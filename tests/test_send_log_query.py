"""The send log read with a read-only SQL query, from SQLite files and from PostgreSQL."""

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import select

from acuse.send_log_watch import SendLogImporter
from config.database import Database
from config.settings import Settings, project_view
from reconcile.models import Send, SendImport
from reconcile.send_log import RowError, SendRow
from reconcile.send_log_query import SendLogQueryError, read_send_log_query, send_log_query

QUERY = (
    'SELECT recipient AS "Correo cliente", sent AS "Fecha de envío", subject AS "Asunto", '
    'negocio AS "Negocio" FROM envios ORDER BY id'
)
ROWS = [
    ("ana@example.co", "2024-03-05 15:45:00", "Estado de cuenta marzo", "N-101"),
    ("luis@example.co; sofia@example.co", "2024-03-06 09:10:00", "Carta de cobro", "N-102"),
    ("not-an-address", "2024-03-07 11:00:00", "Estado de cuenta marzo", "N-103"),
]


def paco_sqlite(path: Path, rows: list[tuple[Any, ...]] = ROWS) -> Path:
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE envios (id INTEGER PRIMARY KEY, recipient TEXT, sent TEXT, "
            "subject TEXT, negocio TEXT)"
        )
        connection.executemany(
            "INSERT INTO envios (recipient, sent, subject, negocio) VALUES (?, ?, ?, ?)", rows
        )
    connection.close()
    return path


def test_sqlite_rows_read(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    paco_sqlite(tmp_path / "paco.db")
    settings = make_settings(
        projects=[
            {
                "code": "TDP2",
                "name": "Torres del Parque",
                "send_log": {"url": "sqlite:///paco.db", "query": QUERY},
            }
        ]
    )
    project = project_view(settings, "TDP2")

    items = list(read_send_log_query(send_log_query(settings, project), project))

    sends = [item for item in items if isinstance(item, SendRow)]
    errors = [item for item in items if isinstance(item, RowError)]
    assert [send.recipient for send in sends] == [
        "ana@example.co",
        "luis@example.co",
        "sofia@example.co",
    ]
    assert sends[0].sent_at == datetime(2024, 3, 5, 20, 45, tzinfo=UTC)
    assert sends[0].negocio == "N-101"
    assert sends[1].line == 2
    assert [error.line for error in errors] == [3]


def query_settings(
    make_settings: Callable[..., Settings], url: str, query: str = QUERY, **send_log: Any
) -> Settings:
    return make_settings(
        projects=[
            {
                "code": "TDP2",
                "name": "Torres del Parque",
                "send_log": {"url": url, "query": query, **send_log},
            }
        ]
    )


def test_missing_column_named(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    paco_sqlite(tmp_path / "paco.db")
    settings = query_settings(
        make_settings, "sqlite:///paco.db", "SELECT recipient AS email FROM envios"
    )
    project = project_view(settings, "TDP2")

    with pytest.raises(SendLogQueryError, match="recipient, sent_at, subject"):
        list(read_send_log_query(send_log_query(settings, project), project))


def test_column_mapping_applies(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    paco_sqlite(tmp_path / "paco.db")
    settings = query_settings(
        make_settings,
        "sqlite:///paco.db",
        "SELECT recipient, sent, subject FROM envios",
        columns={"recipient": "recipient", "sent_at": "sent", "subject": "subject"},
    )
    project = project_view(settings, "TDP2")

    items = list(read_send_log_query(send_log_query(settings, project), project))

    assert isinstance(items[0], SendRow)
    assert items[0].subject == "Estado de cuenta marzo"


def test_writing_query_rejected(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    database = paco_sqlite(tmp_path / "paco.db")
    settings = query_settings(make_settings, "sqlite:///paco.db", "DELETE FROM envios")
    project = project_view(settings, "TDP2")

    with pytest.raises(SendLogQueryError):
        list(read_send_log_query(send_log_query(settings, project), project))

    with sqlite3.connect(database) as connection:
        remaining = connection.execute("SELECT count(*) FROM envios").fetchone()
    assert remaining == (3,)


def test_missing_database_not_created(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = query_settings(make_settings, "sqlite:///absent.db")
    project = project_view(settings, "TDP2")

    with pytest.raises(SendLogQueryError, match=r"absent\.db"):
        list(read_send_log_query(send_log_query(settings, project), project))

    assert not (tmp_path / "absent.db").exists()


def test_unsupported_backend(make_settings: Callable[..., Settings]) -> None:
    settings = query_settings(make_settings, "mysql://paco@127.0.0.1/paco")
    project = project_view(settings, "TDP2")

    with pytest.raises(Exception, match="mysql"):
        send_log_query(settings, project)


def imports(database: Database) -> list[SendImport]:
    with database.session() as session:
        return list(session.exec(select(SendImport)).all())


def sends(database: Database) -> list[Send]:
    with database.session() as session:
        return list(session.exec(select(Send)).all())


def test_unchanged_result_imported_once(
    tmp_path: Path, make_settings: Callable[..., Settings], database: Database
) -> None:
    paco_sqlite(tmp_path / "paco.db")
    settings = query_settings(make_settings, "sqlite:///paco.db")
    importer = SendLogImporter(settings, database)
    project = project_view(settings, "TDP2")

    first = importer.import_new(project)
    second = importer.import_new(project)

    assert [summary.added for summary in first] == [3]
    assert second == []
    assert len(imports(database)) == 1
    assert imports(database)[0].path == f"sqlite:///{tmp_path / 'paco.db'}"


def test_changed_result_adds_new_rows(
    tmp_path: Path, make_settings: Callable[..., Settings], database: Database
) -> None:
    path = paco_sqlite(tmp_path / "paco.db")
    settings = query_settings(make_settings, "sqlite:///paco.db")
    importer = SendLogImporter(settings, database)
    project = project_view(settings, "TDP2")
    importer.import_new(project)

    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO envios (recipient, sent, subject, negocio) "
            "VALUES ('marta@example.co', '2024-04-02 10:00:00', 'Estado de cuenta abril', 'N-104')"
        )
    connection.close()
    again = importer.import_new(project)

    assert again[0].added == 1
    assert again[0].already_known == 3
    assert len(sends(database)) == 4


@pytest.fixture
def postgres_table(postgres_url: str) -> Iterator[str]:
    """PACO's table in a schema of this test's own, which ``postgres_url`` searches first."""
    engine = create_engine(postgres_url)
    table = "acuse_test_envios"
    with engine.connect() as connection:
        connection.execute(
            text(
                f"CREATE TABLE {table} (id serial PRIMARY KEY, recipient text, "
                "sent timestamptz, subject text, negocio text)"
            )
        )
        connection.execute(
            text(
                f"INSERT INTO {table} (recipient, sent, subject, negocio) VALUES "
                "('ana@example.co', '2024-03-05 15:45:00-05', 'Estado de cuenta marzo', 'N-101'), "
                "('luis@example.co', '2024-03-06 09:10:00-05', 'Carta de cobro', 'N-102')"
            )
        )
        connection.commit()
    yield table
    engine.dispose()


@pytest.mark.postgres
def test_postgres_rows_read(
    postgres_table: str, postgres_url: str, make_settings: Callable[..., Settings]
) -> None:
    sql = QUERY.replace("FROM envios", f"FROM {postgres_table}")
    settings = query_settings(make_settings, postgres_url, sql)
    project = project_view(settings, "TDP2")

    items = list(read_send_log_query(send_log_query(settings, project), project))

    assert [item.recipient for item in items if isinstance(item, SendRow)] == [
        "ana@example.co",
        "luis@example.co",
    ]
    assert isinstance(items[0], SendRow)
    assert items[0].sent_at == datetime(2024, 3, 5, 20, 45, tzinfo=UTC)


@pytest.mark.postgres
def test_postgres_query_read_only(
    postgres_table: str, postgres_url: str, make_settings: Callable[..., Settings]
) -> None:
    # nextval() writes to a sequence, which a read-only transaction refuses.
    settings = query_settings(
        make_settings, postgres_url, f"SELECT nextval('{postgres_table}_id_seq') AS id"
    )
    project = project_view(settings, "TDP2")

    with pytest.raises(SendLogQueryError, match="read-only"):
        list(read_send_log_query(send_log_query(settings, project), project))

    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        remaining = connection.execute(text(f"SELECT count(*) FROM {postgres_table}")).scalar()
    engine.dispose()
    assert remaining == 2


@pytest.mark.postgres
def test_postgres_password_file_hidden(
    tmp_path: Path, postgres_table: str, postgres_url: str, make_settings: Callable[..., Settings]
) -> None:
    (tmp_path / "paco-db.password").write_text("canary-pg-4f1e\n", encoding="utf-8")
    sql = QUERY.replace("FROM envios", f"FROM {postgres_table}")
    settings = query_settings(make_settings, postgres_url, sql, password_file="paco-db.password")

    query = send_log_query(settings, project_view(settings, "TDP2"))

    assert query.url.password == "canary-pg-4f1e"
    assert "canary-pg-4f1e" not in query.source
