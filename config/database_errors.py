"""Turning database driver errors into one sentence that names the database and the fix.

SQLAlchemy's own error text carries the SQL statement and its parameters, which mean nothing to
an operator and may contain stored data, so it goes to the debug log only. SQLite errors are
recognised by their result code (``sqlite_errorcode``, Python 3.11 and later). psycopg 3 sets no
SQLSTATE on a failed connection, so those are recognised by the server's message.
"""

import logging
import re

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from config.errors import DatabaseError
from config.i18n import N_, _

log = logging.getLogger(__name__)

# Primary SQLite result codes (https://www.sqlite.org/rescode.html); the extended codes
# carry one of these in their low byte.
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26

_MISSING_POSTGRES_DATABASE = re.compile(r'database "(?P<name>[^"]+)" does not exist')


def database_error(exc: SQLAlchemyError, url: URL) -> DatabaseError:
    """Build the DatabaseError that names what failed on ``url`` and what the operator can do.

    The SQL text and parameters of ``exc`` are logged at debug level and left out of the message.
    """
    log.debug("database error on %s: %s", _display(url), exc)
    cause = exc.orig if isinstance(exc, DBAPIError) else None
    if url.get_backend_name() == "sqlite":
        message = _sqlite_message(cause, url)
    else:
        message = _server_message(cause, url)
    if message is None:
        detail = _first_line(cause if cause is not None else exc)
        message = _(
            "The database {url} failed: {error}. Check that the database is running and "
            "reachable, and [database] url."
        ).format(url=_display(url), error=detail)
    error = DatabaseError(message)
    error.__cause__ = exc
    return error


_BUSY_MESSAGE = N_(
    "Another process holds the lock on the database {path}: wait until the other acuse "
    "command finishes, or stop it or the daemon that writes to it, then run this again."
)
_READ_ONLY_MESSAGE = N_(
    "The database {path} is read-only for this user: give the user that runs acuse write "
    "permission on the file and its folder (chown or chmod), or clear the immutable flag "
    "(chattr -i)."
)
_DAMAGED_MESSAGE = N_(
    "The file {path} is not an acuse database or is damaged: fix [database] url, or restore "
    "the file from a backup."
)
_SQLITE_MESSAGES = {
    SQLITE_BUSY: _BUSY_MESSAGE,
    SQLITE_LOCKED: _BUSY_MESSAGE,
    SQLITE_READONLY: _READ_ONLY_MESSAGE,
    SQLITE_PERM: _READ_ONLY_MESSAGE,
    SQLITE_CANTOPEN: N_(
        "Cannot open the database {path}: make sure its folder exists and the user that runs "
        "acuse can write to it, or fix [database] url."
    ),
    SQLITE_FULL: N_(
        "The disk that holds the database {path} is full: free some space, then run this again."
    ),
    SQLITE_CORRUPT: _DAMAGED_MESSAGE,
    SQLITE_NOTADB: _DAMAGED_MESSAGE,
    SQLITE_IOERR: N_(
        "Reading or writing the database {path} failed with an I/O error: check the disk and "
        "the file system that hold it."
    ),
}


def read_only_error(url: URL) -> DatabaseError:
    """Build the DatabaseError for a database that this user may read but not change."""
    if url.get_backend_name() == "sqlite":
        return DatabaseError(_(_READ_ONLY_MESSAGE).format(path=url.database))
    message = _(
        "The database {url} accepts only reads (a read-only server or transaction): point "
        "[database] url at the primary server, or grant the acuse user write access."
    ).format(url=_display(url))
    return DatabaseError(message)


def _sqlite_message(cause: BaseException | None, url: URL) -> str | None:
    code = getattr(cause, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return None
    template = _SQLITE_MESSAGES.get(code & 0xFF)
    if template is None:
        return None
    return _(template).format(path=url.database or ":memory:")


def _server_message(cause: BaseException | None, url: URL) -> str | None:
    if cause is None:
        return None
    missing = _MISSING_POSTGRES_DATABASE.search(str(cause))
    if missing is not None:
        return _(
            "The PostgreSQL database {name} does not exist on {host}: create it with "
            "'createdb {name}' (as a user allowed to), or fix the database name in "
            "[database] url."
        ).format(name=missing.group("name"), host=url.host or "localhost")
    return None


def _display(url: URL) -> str:
    # config.database imports this module, so its display_url is imported at call time.
    from config.database import display_url  # noqa: PLC0415

    return display_url(url)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
