"""Fixtures shared by every test: a temporary configuration and database."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from config.database import Database, open_database
from config.i18n import activate
from config.settings import Settings, settings_from_mapping

pytest_plugins = ["tests.dovecot", "tests.smtp_server", "tests.oauth2_provider"]


@pytest.fixture(autouse=True)
def english_messages() -> None:
    """Show messages in English, because tests match the message ids and not their translation."""
    activate("en")


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build validated settings rooted in the test's temp folder; keyword arguments are sections."""

    def build(**sections: Any) -> Settings:
        data: dict[str, Any] = {
            "database": {"url": f"sqlite:///{tmp_path / 'acuse.db'}"},
            "archive": {"path": str(tmp_path / "archive")},
        }
        data.update(sections)
        return settings_from_mapping(data, tmp_path)

    return build


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """An empty SQLite database at the newest schema."""
    db = open_database(f"sqlite:///{tmp_path / 'acuse.db'}")
    yield db
    db.dispose()
