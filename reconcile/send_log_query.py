"""Read a project's send log from a database with a read-only SQL query.

The query's result columns are matched to send-log fields exactly as the headers of a PACO
export are (``[projects.send_log.columns]`` included), and each result row goes through the same
reader, so it yields the same SendRow and RowError items as ``read_send_log``. Row numbers count
result rows from 1.

The query runs in a read-only transaction: SQLite opens the file read-only with
``query_only`` on, and PostgreSQL runs ``SET TRANSACTION READ ONLY``. So a query that tries to
write fails in the database and changes nothing. Rows stream from a server-side cursor where
the driver has one, so a large send log is never held in memory at once.
"""

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from config.database import display_url, url_secrets
from config.errors import AcuseError, ConfigError
from config.i18n import _
from config.logs import register_secret
from config.secrets import read_secret
from config.settings import ProjectView, Settings
from reconcile.send_log import ColumnMatch, RowError, SendRow, match_columns, read_matched_rows

STREAM_ROWS = 1000
STATEMENT_TIMEOUT = timedelta(minutes=10)
_SUPPORTED_BACKENDS = ("sqlite", "postgresql")


class SendLogQueryError(AcuseError):
    """The send-log query failed; ``source`` is the database URL without its password."""

    def __init__(self, message: str, *, project: str, source: str) -> None:
        super().__init__(message)
        self.project = project
        self.source = source


@dataclass(frozen=True)
class SendLogQuery:
    """A database and the SQL query that lists a project's sends.

    ``url`` may hold the password and must never be shown; ``source`` is the same URL with the
    password hidden, for logs, messages and the import record.
    """

    project: str
    url: URL
    sql: str

    @property
    def source(self) -> str:
        return display_url(self.url)


def send_log_query(settings: Settings, project: ProjectView) -> SendLogQuery:
    """Build the project's send-log query, with the password read from ``password_file``.

    A relative SQLite path is read from the configuration file's folder. Raises ConfigError
    for a URL that cannot be parsed or names an unsupported database, and SecretError for an
    unreadable password file.
    """
    config = project.settings.send_log
    if config.url is None or config.query is None:
        message = _("Project {project} reads its send log from no database.").format(
            project=project.code
        )
        raise ConfigError(message, key="projects.send_log.url")

    url = _parse_url(config.url, project.code)
    if url.get_backend_name() not in _SUPPORTED_BACKENDS:
        message = _(
            "The send-log database of project {project} is {backend}, which acuse cannot read: "
            "use a sqlite:/// or postgresql+psycopg:// URL."
        ).format(project=project.code, backend=url.get_backend_name())
        raise ConfigError(message, key="projects.send_log.url")
    if url.get_backend_name() == "sqlite" and url.database:
        url = url.set(database=str(settings.resolve_path(url.database)))
    if config.password_file is not None:
        key = f"projects[{project.code}].send_log.password_file"
        password = read_secret(settings, config.password_file, key)
        register_secret(password)
        url = url.set(password=password)
    for secret in url_secrets(url):
        register_secret(secret)
    return SendLogQuery(project.code, url, config.query)


def read_send_log_query(query: SendLogQuery, project: ProjectView) -> Iterator[SendRow | RowError]:
    """Yield a SendRow per recipient of each result row, or a RowError, in result order.

    Raises SendLogQueryError when the database cannot be reached, the query fails, or its
    columns lack a required field; the error comes when iteration starts or, for a failure
    in the middle of the result, at that row.
    """
    with _read_only_connection(query) as connection:
        columns, rows = _stream(connection, query)
        match = match_columns(columns, project.settings.send_log)
        _check_columns(match, columns, query)
        records = ((number, row) for number, row in enumerate(rows, start=1))
        yield from read_matched_rows(match, records, project)


def query_digest(query: SendLogQuery) -> str:
    """Return the SHA-256 of the query's result, so an unchanged result is not imported again."""
    digest = hashlib.sha256()
    with _read_only_connection(query) as connection:
        columns, rows = _stream(connection, query)
        digest.update(json.dumps(columns).encode())
        for row in rows:
            digest.update(json.dumps(list(row), default=str, ensure_ascii=False).encode())
            digest.update(b"\n")
    return digest.hexdigest()


def _parse_url(value: str, project: str) -> URL:
    try:
        return make_url(value)
    except (ArgumentError, ValueError) as exc:
        # make_url raises ValueError for a port that is not a number.
        message = _(
            "Invalid send-log database URL in project {project}: write it as "
            "sqlite:////path/paco.db or postgresql+psycopg://user@host/database."
        ).format(project=project)
        raise ConfigError(message, key="projects.send_log.url") from exc


@contextmanager
def _read_only_connection(query: SendLogQuery) -> Iterator[Connection]:
    """Open a connection whose transaction cannot write, and roll it back at the end."""
    url = query.url
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        # The URI form opens the file read-only and fails, instead of creating it, when absent.
        url = url.set(database=f"file:{url.database}?mode=ro", query={"uri": "true"})
    else:
        timeout_ms = int(STATEMENT_TIMEOUT.total_seconds() * 1000)
        # connect_args replaces the URL's own ``options`` (a search_path, say), so keep them.
        given = url.query.get("options", ())
        options = [given] if isinstance(given, str) else list(given)
        connect_args["options"] = " ".join([*options, f"-c statement_timeout={timeout_ms}"])

    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except (ArgumentError, ImportError) as exc:
        raise _query_error(query, exc) from exc
    try:
        with engine.connect() as connection:
            _make_read_only(connection)
            yield connection
            connection.rollback()
    except SQLAlchemyError as exc:
        raise _query_error(query, exc) from exc
    finally:
        engine.dispose()


def _make_read_only(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA query_only = ON")
    else:
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")


def _stream(connection: Connection, query: SendLogQuery) -> tuple[list[str], Iterator[Any]]:
    streaming = connection.execution_options(stream_results=True, yield_per=STREAM_ROWS)
    result = streaming.execute(text(query.sql))
    if not result.returns_rows:
        message = _(
            "The send-log query of project {project} on {source} returned no rows at all: "
            "write a SELECT statement."
        ).format(project=query.project, source=query.source)
        raise SendLogQueryError(message, project=query.project, source=query.source)
    return list(result.keys()), iter(result)


def _check_columns(match: ColumnMatch, columns: Sequence[str], query: SendLogQuery) -> None:
    if match.missing:
        first = match.missing[0]
        message = _(
            "The send-log query of project {project} returns no column for {fields}; it "
            "returns {found}. Name the columns as the export does, for example "
            '"... AS {expected}", or map them in [projects.send_log.columns].'
        ).format(
            project=query.project,
            fields=", ".join(match.missing),
            found=", ".join(repr(name) for name in columns) or _("none"),
            expected=json.dumps(match.expected_name(first), ensure_ascii=False),
        )
        raise SendLogQueryError(message, project=query.project, source=query.source)
    if match.duplicates:
        message = _(
            "The send-log query of project {project} returns two columns for {field}: "
            "keep one of them."
        ).format(project=query.project, field=match.duplicates[0])
        raise SendLogQueryError(message, project=query.project, source=query.source)


def _query_error(query: SendLogQuery, exc: Exception) -> SendLogQueryError:
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    message = _(
        "The send-log query of project {project} on {source} failed: {error}. Check "
        "send_log.url, send_log.query and that the database is reachable."
    ).format(project=query.project, source=query.source, error=detail)
    return SendLogQueryError(message, project=query.project, source=query.source)
