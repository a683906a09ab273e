"""The Alembic revisions: the schema they build matches the models, and the code knows the head."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text, update
from sqlmodel import SQLModel, select

import monitor.leases  # noqa: F401 - registers the instance and lease tables
import reconcile.alert_models  # noqa: F401 - registers the alert tables
from config.database import (
    SCHEMA_REVISION,
    Database,
    alembic_config,
    create_database_engine,
    current_revisions,
    open_database,
)
from monitor.models import MailboxCursor, StoredMessage
from reconcile.models import SendImport
from tests.acuse_process import spawn_acuse

pytestmark = pytest.mark.both_engines

STORED_AT = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)


def test_schema_revision_is_head(database: Database) -> None:
    script = ScriptDirectory.from_config(alembic_config(database.engine))

    assert script.get_heads() == [SCHEMA_REVISION]


def test_upgraded_database_records_head(database: Database) -> None:
    assert current_revisions(database.engine) == {SCHEMA_REVISION}


def test_migrations_match_models(database: Database) -> None:
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)

    assert differences == []


def test_reopening_keeps_revision(database: Database) -> None:
    again = open_database(str(database.engine.url))

    assert current_revisions(again.engine) == {SCHEMA_REVISION}
    again.dispose()


def test_upgrade_from_first_release_keeps_data(db_url: str) -> None:
    engine = create_database_engine(db_url)
    command.upgrade(alembic_config(engine), "0001")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO message (project, origin, location, uidvalidity, uid, sha256, size, "
                "stored_at, classification, read_at) VALUES ('TDP2', 'imap', 'INBOX', 1700000000, "
                "41, :sha, 10, :now, 'evidence', :now)"
            ),
            {"sha": "a" * 64, "now": STORED_AT},
        )
        connection.execute(
            text(
                "INSERT INTO mailbox_cursor (project, folder, uidvalidity, last_uid, updated_at) "
                "VALUES ('TDP2', 'INBOX', 1700000000, 41, :now)"
            ),
            {"now": STORED_AT},
        )
        connection.execute(
            text(
                "INSERT INTO send_import (project, path, sha256, imported_at, rows, added, "
                "already_known, rejected) VALUES ('TDP2', '/srv/marzo.csv', :sha, :now, 3, 3, 0, 0)"
            ),
            {"sha": "b" * 64, "now": STORED_AT},
        )
    engine.dispose()

    database = open_database(db_url)
    with database.write() as session:
        # UIDs and UIDVALIDITY values are unsigned 32-bit numbers, above a signed int's range.
        session.execute(
            update(MailboxCursor).values(uidvalidity=4_294_967_295, last_uid=4_000_000_000)
        )
    with database.session() as session:
        message = session.exec(select(StoredMessage)).one()
        cursor = session.exec(select(MailboxCursor)).one()
        imported = session.exec(select(SendImport)).one()
    database.dispose()

    assert (message.uidvalidity, message.uid, message.sha256) == (1_700_000_000, 41, "a" * 64)
    assert (cursor.uidvalidity, cursor.last_uid) == (4_294_967_295, 4_000_000_000)
    assert imported.finished_at == imported.imported_at
    assert imported.added == 3


@pytest.mark.postgres
def test_instances_starting_together_upgrade_once(tmp_path: Path, postgres_url: str) -> None:
    config = tmp_path / "acuse.toml"
    config.write_text(f'[database]\nurl = "{postgres_url}"\n', encoding="utf-8")

    processes = [spawn_acuse(config, "db", "upgrade") for _ in range(3)]
    outcomes = [(process.wait(120), process.communicate()[1]) for process in processes]

    assert [code for code, _stderr in outcomes] == [0, 0, 0], outcomes
    engine = create_database_engine(postgres_url)
    assert current_revisions(engine) == {SCHEMA_REVISION}
    engine.dispose()
