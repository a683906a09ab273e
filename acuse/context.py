"""What every command needs, opened once and only when first used: settings and the database."""

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from config.database import Database, open_database
from config.errors import ConfigError
from config.i18n import _
from config.settings import ProjectView, Settings, load_settings, project_views


class AppContext:
    """The settings and database of one command invocation."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None
        self._database: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def database(self) -> Database:
        if self._database is None:
            self._database = open_database(self.settings.database_url)
        return self._database

    def projects(self, code: str | None = None) -> list[ProjectView]:
        """The projects a command works on: ``code`` alone, or every configured project."""
        views = project_views(self.settings, code)
        if not views:
            raise ConfigError(
                _("No project is configured: add a [[projects]] table to the configuration.")
            )
        return views

    def parse_as_of(self, value: str | None) -> datetime | None:
        """Parse ``--as-of``: ISO 8601; a time without offset is in the default time zone."""
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            message = _(
                "Invalid --as-of value {value!r}: "
                "write an ISO 8601 time such as 2026-11-03T18:00-05:00."
            )
            raise ConfigError(message.format(value=value)) from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ZoneInfo(self.settings.defaults.timezone))
        return parsed

    def close(self) -> None:
        if self._database is not None:
            self._database.dispose()
