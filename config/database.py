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
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Table,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy import Enum as SQLEnum
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session

from config.database_errors import database_error
from config.errors import DatabaseError
from config.i18n import _
from config.logs import register_secret

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# The newest revision in migrations/versions; a test checks that the two agree.
SCHEMA_REVISION = "0004"
# _ALEMBIC_NOTE: alembic takes most of a second to import, and every command opens the database,
# so it is imported only when a schema must change, which the revision check above decides.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_BEGIN_OPTION = "acuse_begin"
_MASK = "***"
# libpq and most drivers also read a password from the query string (``?password=...``), so
# every query parameter whose name looks like a credential is hidden as well.
_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key", re.IGNORECASE)
_UNPARSED_USERINFO = re.compile(r"(://[^:/@?#]*):[^@/?#]*@")
_UNPARSED_PARAMETER = re.compile(r"([?&][^=&#]+)=([^&#]*)")


def url_secrets(url: URL) -> list[str]:
    """Return the password and the credential query parameters of ``url``, for log redaction."""
    secrets = [] if url.password is None else [str(url.password)]
    for name, value in url.query.items():
        if _SECRET_PARAMETER.search(name):
            secrets.extend([value] if isinstance(value, str) else value)
    return secrets


def display_url(url: URL | str) -> str:
    """Render a database URL for messages and logs, with every credential replaced by ``***``.

    A string that SQLAlchemy cannot parse is masked by pattern: the password after ``user:``
    and every credential query parameter.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return _mask_unparsed(str(url))
    return _mask_unparsed(parsed.render_as_string(hide_password=True))


def _mask_unparsed(text: str) -> str:
    def parameter(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"{name}={_MASK}" if _SECRET_PARAMETER.search(name) else match.group(0)

    masked = _UNPARSED_USERINFO.sub(rf"\1:{_MASK}@", text)
    return _UNPARSED_PARAMETER.sub(parameter, masked)


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

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        # One call per value instead of the impl's parser and then process_result_value:
        # a full reconciliation pass reads two datetimes per send.
        return _utc_from_sqlite


def _utc_from_sqlite(value: str | None) -> datetime | None:
    """Read a datetime as SQLite stores it, naive UTC text, and return it aware."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


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


def update_rows(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[object, ...]],
) -> None:
    """Set ``columns`` of the rows of ``table`` named by id, in one UPDATE statement.

    Each row is ``(id, *values)``, with one value per column, already in the form the driver
    stores: ints and strs, enum values instead of members, and no None. One statement with a
    VALUES list costs the driver one call, which releases the GIL for the whole update, so
    another thread can compute while it runs. A call of ``executemany`` would take the GIL back
    for every row. Needs SQLite 3.33 or newer, for UPDATE ... FROM.
    """
    if not rows:
        return
    preparer = connection.dialect.identifier_preparer
    name = preparer.format_table(table)
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    row = "(" + ", ".join([marker] * (len(columns) + 1)) + ")"
    # VALUES names its columns column1, column2 and so on, on SQLite and PostgreSQL alike.
    assignments = ", ".join(
        f"{preparer.quote(column)} = batch.column{index}"
        for index, column in enumerate(columns, start=2)
    )
    # The text holds only identifiers quoted by the dialect and placeholders. Values are bound.
    statement = (
        f"UPDATE {name} SET {assignments} "  # noqa: S608
        f"FROM (VALUES {', '.join([row] * len(rows))}) AS batch "
        f"WHERE {name}.id = batch.column1"
    )
    connection.exec_driver_sql(statement, tuple(value for row in rows for value in row))


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

    A SQLite database's folder is created when missing. Raises DatabaseError for a URL that
    SQLAlchemy cannot parse or whose driver is missing.
    """
    parsed = _parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine

    return _plain_engine(parsed, pool_pre_ping=True)


def _parse_database_url(url: str) -> URL:
    """Parse ``url`` and register its credentials for log redaction; raise DatabaseError."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        # make_url raises ValueError for a port that is not a number.
        message = _(
            "Invalid database URL {url!r}: write it as sqlite:////path/acuse.db or postgresql+psycopg://..."
        ).format(url=display_url(url))
        raise DatabaseError(message) from exc
    for secret in url_secrets(parsed):
        register_secret(secret)
    return parsed


def _plain_engine(url: URL, **options: Any) -> Engine:
    try:
        return create_engine(url, **options)
    except (ArgumentError, ImportError) as exc:
        message = _("Cannot use database URL {url}: {error}").format(
            url=display_url(url), error=exc
        )
        raise DatabaseError(message) from exc


@dataclass(frozen=True)
class SchemaState:
    """The schema revisions found in a database by ``read_schema_state``.

    ``sqlite_path`` is the database file of a SQLite URL, and ``exists`` is false when that
    file is missing.
    """

    exists: bool
    revisions: frozenset[str]
    sqlite_path: Path | None = None

    @property
    def current(self) -> bool:
        """Whether the database is at SCHEMA_REVISION, the newest schema."""
        return self.revisions == {SCHEMA_REVISION}


def read_schema_state(url: str) -> SchemaState:
    """Read the schema revisions of the database at ``url`` without changing anything.

    A missing SQLite file is reported, never created, and an existing one is opened read-only.
    Raises DatabaseError when the URL is invalid or the database cannot be read.
    """
    parsed = _parse_database_url(url)
    sqlite_path = None
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return SchemaState(exists=False, revisions=frozenset())
        sqlite_path = Path(parsed.database)
        if not sqlite_path.exists():
            return SchemaState(exists=False, revisions=frozenset(), sqlite_path=sqlite_path)
        engine = create_engine(_read_only_sqlite_url(parsed, sqlite_path), poolclass=NullPool)
    else:
        engine = _plain_engine(parsed, poolclass=NullPool)

    try:
        revisions = frozenset(current_revisions(engine))
    except SQLAlchemyError as exc:
        raise database_error(exc, parsed) from exc
    finally:
        engine.dispose()
    return SchemaState(exists=True, revisions=revisions, sqlite_path=sqlite_path)


def _read_only_sqlite_url(url: URL, path: Path) -> URL:
    # mode=ro never writes the database, but SQLite creates its -wal and -shm files when they
    # are missing. immutable=1 creates nothing, and it is safe only while no -wal file contains
    # changes that are not yet in the database file.
    wal = path.with_name(path.name + "-wal")
    option = "mode=ro" if wal.exists() else "immutable=1"
    return url.set(database=f"file:{quote(str(path.resolve()))}?{option}", query={"uri": "true"})


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


def reject_newer_schema(engine: Engine) -> None:
    """Raise DatabaseError when the database is at a revision that this acuse does not have.

    Such a database was migrated by a newer acuse, and upgrading or using it could damage it.
    """
    reject_unknown_revisions(engine.url, current_revisions(engine))


def reject_unknown_revisions(url: URL | str, revisions: Iterable[str]) -> None:
    """Raise DatabaseError naming the ``revisions`` that this acuse's migrations do not have."""
    from alembic.config import Config as AlembicConfig  # noqa: PLC0415 - see _ALEMBIC_NOTE
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - see _ALEMBIC_NOTE

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    known = {revision.revision for revision in ScriptDirectory.from_config(config).walk_revisions()}
    unknown = sorted(set(revisions) - known)
    if unknown:
        message = _(
            "The database {url} was written by a newer acuse (schema revision {revision}): "
            "upgrade acuse to the version that wrote it."
        ).format(url=display_url(url), revision=", ".join(unknown))
        raise DatabaseError(message)


@contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """Turn SQLAlchemy errors in the block into DatabaseError, with the URL's credentials hidden.

    The engine is disposed of when an error leaves the block.
    """
    try:
        yield
    except DatabaseError:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        raise database_error(exc, engine.url) from exc


def open_database(url: str, *, upgrade: bool = True) -> Database:
    """Open the database at ``url``, upgrading its schema unless ``upgrade`` is false.

    Raises DatabaseError with the cause when the server cannot be reached or the schema cannot
    be brought up to date.
    """
    engine = create_database_engine(url)
    with database_errors(engine):
        if upgrade and not schema_is_current(engine):
            reject_newer_schema(engine)
            log.info("upgrading database schema", extra={"database": display_url(engine.url)})
            upgrade_schema(engine)
    return Database(engine)
