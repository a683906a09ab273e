"""Fixtures shared by every test: a temporary configuration and database.

Tests marked ``both_engines`` run twice, on SQLite and on PostgreSQL: their ``db_url`` (and so
``database`` and ``make_settings``) points at a fresh SQLite file, then at a fresh PostgreSQL
schema. Every other test uses SQLite only.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from config.database import Database, open_database
from config.i18n import activate
from config.settings import Settings, settings_from_mapping

pytest_plugins = ["tests.dovecot", "tests.smtp_server", "tests.oauth2_provider", "tests.postgres"]

ENGINES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_url" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("both_engines") is None:
        return
    params = [
        pytest.param(engine, marks=[pytest.mark.postgres] if engine == "postgresql" else [])
        for engine in ENGINES
    ]
    metafunc.parametrize("db_url", params, indirect=True, ids=list(ENGINES))


@pytest.fixture(autouse=True)
def english_messages() -> None:
    """Show messages in English, because tests match the message ids and not their translation."""
    activate("en")


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of one test: a SQLite file, or a PostgreSQL schema of its own."""
    engine = getattr(request, "param", "sqlite")
    if engine == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'acuse.db'}"


@pytest.fixture
def make_settings(tmp_path: Path, db_url: str) -> Callable[..., Settings]:
    """Build validated settings rooted in the test's temp folder; keyword arguments are sections."""

    def build(**sections: Any) -> Settings:
        data: dict[str, Any] = {
            "database": {"url": db_url},
            "archive": {"path": str(tmp_path / "archive")},
        }
        data.update(sections)
        return settings_from_mapping(data, tmp_path)

    return build


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """An empty database at the newest schema."""
    db = open_database(db_url)
    yield db
    db.dispose()
