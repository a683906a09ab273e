"""What every command needs, opened once and only when first used: settings and the database."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from config.database import Database, open_database
from config.database_errors import database_error
from config.errors import ConfigError, DatabaseError
from config.i18n import _
from config.settings import ProjectView, Settings, load_settings, project_views

# Deadlines and time windows are subtracted from or added to --as-of, so it must stay well
# inside the years that datetime and the databases can hold (1 to 9999).
AS_OF_MIN = datetime(1970, 1, 1, tzinfo=UTC)
AS_OF_MAX = datetime(9000, 1, 1, tzinfo=UTC)
AS_OF_LAST_DAY = (AS_OF_MAX - timedelta(days=1)).date()


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

    def database_failure(self, exc: SQLAlchemyError) -> DatabaseError:
        """Describe ``exc``, raised while a command used the database, as one clear sentence."""
        if self._database is not None:
            url = self._database.engine.url
        else:
            url = make_url(self.settings.database_url)
        return database_error(exc, url)

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
        try:
            in_range = AS_OF_MIN <= parsed.astimezone(UTC) < AS_OF_MAX
        except OverflowError:
            in_range = False
        if not in_range:
            message = _(
                "Invalid --as-of value {value!r}: write a time between {first} and {last}, "
                "such as 2026-11-03T18:00-05:00."
            )
            raise ConfigError(
                message.format(value=value, first=AS_OF_MIN.date(), last=AS_OF_LAST_DAY)
            )
        return parsed

    def close(self) -> None:
        if self._database is not None:
            self._database.dispose()
