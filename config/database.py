"""The database engine, sessions, the UTC datetime column type and schema migrations.

SQLite is tuned for a crash-safe single writer: WAL journal, ``synchronous=FULL``, a busy timeout,
foreign keys on, and write transactions that take the write lock when they begin
(``BEGIN IMMEDIATE``). Two writers therefore never deadlock halfway through; the second waits up
to the busy timeout. PostgreSQL runs write transactions concurrently, so a write that reads
state and then changes it names a lock (``write(lock=...)``), which becomes a transaction-level
advisory lock there. Alembic owns the schema: ``open_database`` upgrades it to the newest
revision.
"""

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, Engine, create_engine, event, inspect, text
from sqlalchemy import Enum as SQLEnum
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session

from config.errors import DatabaseError
from config.i18n import _

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# The newest revision in migrations/versions; a test checks that the two agree.
SCHEMA_REVISION = "0003"
# _ALEMBIC_NOTE: alembic takes most of a second to import, and every command opens the database,
# so it is imported only when a schema must change, which the revision check above decides.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_BEGIN_OPTION = "acuse_begin"


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored in UTC and always returned aware.

    Binding a naive datetime raises ValueError, because its zone would be a guess. SQLite has
    no zone-aware type, so values are stored there as naive UTC text, which also sorts in time
    order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            message = (
                f"naive datetime {value.isoformat()} cannot be stored: attach a time zone first"
            )
            raise ValueError(message)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def enum_type(enum_class: type[StrEnum]) -> SQLEnum:
    """A column type that stores a StrEnum's values as text and returns its members."""
    return SQLEnum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


def advisory_key(name: str) -> int:
    """Map a lock name to a PostgreSQL advisory lock key, a signed 64-bit integer."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" hook below instead of the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """One engine and the sessions over it.

    ``session()`` is for reading and ``write()`` for changing data. On SQLite a write session
    takes the write lock at its first statement and commits when its block ends without error.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write_engine = engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        """Open a session for queries; close it, or use it in a ``with`` block."""
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def write(self, lock: str | None = None) -> Iterator[Session]:
        """Open a session that commits when the block ends, or rolls back on error.

        ``lock`` names what the block reads and then changes, such as ``alerts:TDP2``. Two
        blocks with the same name never overlap: on PostgreSQL the second waits for the first
        to commit, and on SQLite every write block already takes the one write lock.
        """
        with Session(self._write_engine, expire_on_commit=False) as session:
            try:
                if lock is not None and self.dialect == "postgresql":
                    session.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(lock)}
                    )
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def create_database_engine(url: str) -> Engine:
    """Create an engine for ``url`` with acuse's connection settings.

    Raises DatabaseError for a URL that SQLAlchemy cannot parse or whose driver is missing.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        message = _(
            "Invalid database URL {url!r}: write it as sqlite:////path/acuse.db or postgresql+psycopg://..."
        ).format(url=url)
        raise DatabaseError(message) from exc

    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine

    try:
        return create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:
        message = _("Cannot use database URL {url}: {error}").format(
            url=parsed.render_as_string(), error=exc
        )
        raise DatabaseError(message) from exc


def alembic_config(engine: Engine) -> "AlembicConfig":
    """Build the Alembic configuration that migrates ``engine`` with acuse's revisions."""
    from alembic.config import Config as AlembicConfig  # noqa: PLC0415 - see _ALEMBIC_NOTE

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def current_revisions(engine: Engine) -> set[str]:
    """Return the schema revisions recorded in the database; empty for a new database."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return set()
        rows = connection.execute(text("SELECT version_num FROM alembic_version"))
        return {row[0] for row in rows}


def schema_is_current(engine: Engine) -> bool:
    """Return whether the database is at SCHEMA_REVISION, the newest schema."""
    return current_revisions(engine) == {SCHEMA_REVISION}


def upgrade_schema(engine: Engine) -> None:
    """Bring the database to the newest schema revision.

    On PostgreSQL a session advisory lock makes instances that start together upgrade one
    after the other. Each one checks the revision again once it has the lock.
    """
    from alembic import command  # noqa: PLC0415 - see _ALEMBIC_NOTE

    if engine.dialect.name != "postgresql":
        command.upgrade(alembic_config(engine), "head")
        return
    key = {"key": advisory_key("schema-upgrade")}
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
        try:
            if not schema_is_current(engine):
                command.upgrade(alembic_config(engine), "head")
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
            connection.commit()


def open_database(url: str, *, upgrade: bool = True) -> Database:
    """Open the database at ``url``, upgrading its schema unless ``upgrade`` is false.

    Raises DatabaseError with the cause when the server cannot be reached or the schema cannot
    be brought up to date.
    """
    engine = create_database_engine(url)
    try:
        if upgrade and not schema_is_current(engine):
            log.info("upgrading database schema", extra={"database": engine.url.render_as_string()})
            upgrade_schema(engine)
    except OperationalError as exc:
        engine.dispose()
        message = _("Cannot open database {url}: {error}").format(
            url=engine.url.render_as_string(), error=exc.orig
        )
        raise DatabaseError(message) from exc
    except SQLAlchemyError as exc:
        engine.dispose()
        message = _("Cannot migrate database {url}: {error}").format(
            url=engine.url.render_as_string(), error=exc
        )
        raise DatabaseError(message) from exc
    return Database(engine)
