"""The Alembic revisions: the schema they build matches the models, and the code knows the head."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import monitor.models  # noqa: F401 - registers the monitor tables
import reconcile.models  # noqa: F401 - registers the reconcile tables
from config.database import (
    SCHEMA_REVISION,
    Database,
    alembic_config,
    current_revisions,
    open_database,
)

pytestmark = pytest.mark.both_engines


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
