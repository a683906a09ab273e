"""Store a project's send log in the database, idempotently and in bounded memory.

Rows stream from the reader in batches. Each batch is one write transaction that inserts its
sends with INSERT ... ON CONFLICT DO NOTHING on (project, send_key) and updates the import's
counts. So an interrupted import keeps the batches it committed, with counts that match them,
and running the import again adds only what is missing.
"""

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, islice
from pathlib import Path
from typing import Any

from sqlalchemy import Insert, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, col, select

from config.database import Database, utcnow
from config.errors import DatabaseError
from config.i18n import _
from config.settings import ProjectView
from reconcile.models import Send, SendImport, SendState
from reconcile.send_keys import OccurrenceCounter, next_send_keys
from reconcile.send_log import RowError, SendRow, read_send_log

log = logging.getLogger(__name__)

# Sends per write transaction. Each commit costs an fsync on SQLite, and a batch holds the
# write lock only briefly, so other writers wait at most one batch.
BATCH_SIZE = 5000
MAX_REPORTED_ERRORS = 100


@dataclass
class ImportSummary:
    """The counts and row errors of one import.

    ``rows`` counts the data rows of the file. ``added`` and ``already_known`` count sends, one
    per row and recipient. ``rejected`` counts the rows, or single addresses of a row, that
    were not stored, and ``errors`` contains the first MAX_REPORTED_ERRORS of them.
    """

    import_id: int
    project: str
    path: Path | str
    sha256: str
    rows: int = 0
    added: int = 0
    already_known: int = 0
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def errors_not_listed(self) -> int:
        """How many rejections ``errors`` leaves out because of its cap."""
        return self.rejected - len(self.errors)


def import_send_log(
    db: Database,
    path: Path,
    project: ProjectView,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import the send log at ``path`` into ``project``; ``now`` (aware) stamps the import.

    ``progress`` receives the number of sends and rejections of each stored batch.

    Raises SendLogError before anything is stored when the file cannot be read or lacks a
    required column, and SendLogError later when the file turns out to be damaged, in which
    case the batches before the damage stay stored.
    """
    resolved = path.resolve()
    items = read_send_log(path, project, now)
    return import_send_rows(
        db, items, project, now, source=resolved, sha256=file_sha256(resolved), progress=progress
    )


def import_send_rows(
    db: Database,
    items: Iterator[SendRow | RowError],
    project: ProjectView,
    now: datetime,
    *,
    source: Path | str,
    sha256: str,
    after_batch: Callable[[], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Store the rows of one send-log source, recorded as an import of ``source``.

    ``sha256`` identifies the content that was read. The first item is read before the import
    is recorded, so a source that fails at once (a missing column) records nothing. The import
    is marked finished after its last batch. ``after_batch`` runs after each committed batch,
    for example to renew a claim on the work.
    """
    first = next(items, None)
    if first is not None:
        items = chain([first], items)

    summary = _start_import(db, source, sha256, project.code, now)
    with closing(OccurrenceCounter()) as counter:
        run = _ImportRun(db, summary, counter, now)
        for batch in _batches(items, BATCH_SIZE):
            run.store(batch)
            if after_batch is not None:
                after_batch()
            if progress is not None:
                progress(len(batch))
    _finish_import(db, summary.import_id)

    level = logging.WARNING if summary.rejected else logging.INFO
    log.log(
        level,
        "send log imported",
        extra={
            "project": summary.project,
            "path": str(summary.path),
            "import_id": summary.import_id,
            "rows": summary.rows,
            "added": summary.added,
            "already_known": summary.already_known,
            "rejected": summary.rejected,
        },
    )
    return summary


def sha256_imported(db: Database, project: str, sha256: str) -> bool:
    """Whether an import of content with this SHA-256 into ``project`` ran to its end."""
    query = select(SendImport.id).where(
        SendImport.project == project,
        SendImport.sha256 == sha256,
        col(SendImport.finished_at).is_not(None),
    )
    with db.session() as session:
        return session.exec(query).first() is not None


def file_sha256(path: Path) -> str:
    """Return the SHA-256 hex digest of the file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _start_import(
    db: Database, source: Path | str, digest: str, project: str, now: datetime
) -> ImportSummary:
    statement = (
        insert(SendImport)
        .values(project=project, path=str(source), sha256=digest, imported_at=now)
        .returning(col(SendImport.id))
    )
    with db.write() as session:
        import_id = int(session.exec(statement).scalar_one())
    return ImportSummary(import_id=import_id, project=project, path=source, sha256=digest)


def _finish_import(db: Database, import_id: int) -> None:
    with db.write() as session:
        session.exec(
            update(SendImport).where(col(SendImport.id) == import_id).values(finished_at=utcnow())
        )


def _batches(items: Iterable[SendRow | RowError], size: int) -> Iterator[list[SendRow | RowError]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class _ImportRun:
    """Stores the batches of one import and keeps its summary up to date."""

    def __init__(
        self, db: Database, summary: ImportSummary, counter: OccurrenceCounter, now: datetime
    ) -> None:
        self._db = db
        self._summary = summary
        self._counter = counter
        self._now = now
        self._insert = _insert_statement(db.dialect)
        self._last_line = 0

    def store(self, batch: Sequence[SendRow | RowError]) -> None:
        """Insert the batch's sends and record its counts in one transaction."""
        sends = [item for item in batch if isinstance(item, SendRow)]
        errors = [item for item in batch if isinstance(item, RowError)]
        keys = next_send_keys(sends, self._counter)
        values = [self._send_values(row, key) for row, key in zip(sends, keys, strict=True)]

        with self._db.write() as session:
            added = _insert_sends(session, self._insert, values)
            self._count(batch, errors, added=added, known=len(values) - added)
            _save_counts(session, self._summary)

    def _count(
        self, batch: Sequence[SendRow | RowError], errors: list[RowError], added: int, known: int
    ) -> None:
        summary = self._summary
        for item in batch:
            # A row with several recipients yields several items on the same line.
            if item.line != self._last_line:
                summary.rows += 1
                self._last_line = item.line
        summary.added += added
        summary.already_known += known
        summary.rejected += len(errors)
        room = MAX_REPORTED_ERRORS - len(summary.errors)
        summary.errors.extend(errors[: max(room, 0)])

    def _send_values(self, row: SendRow, key: str) -> dict[str, Any]:
        return {
            "project": self._summary.project,
            "send_key": key,
            "external_id": row.external_id,
            "notification_type": row.notification_type,
            "negocio": row.negocio,
            "inmueble": row.inmueble,
            "client": row.client,
            "recipient": row.recipient,
            "lleida_copied": row.lleida_copied,
            "sent_at": row.sent_at,
            "subject": row.subject,
            "message_id": row.message_id,
            "import_id": self._summary.import_id,
            "import_line": row.line,
            "imported_at": self._now,
            "state": SendState.PENDING,
        }


def _insert_statement(dialect: str) -> Insert:
    """INSERT into send that skips rows whose (project, send_key) is stored, returning new ids."""
    table = SQLModel.metadata.tables[Send.__tablename__]
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
    else:
        message = _("Database engine {engine} is not supported: use SQLite or PostgreSQL.").format(
            engine=dialect
        )
        raise DatabaseError(message)
    conflict_free = statement.on_conflict_do_nothing(index_elements=["project", "send_key"])
    returning: Insert = conflict_free.returning(table.c.id)
    return returning


def _insert_sends(session: Session, statement: Insert, values: list[dict[str, Any]]) -> int:
    """Insert the sends; return how many were new."""
    if not values:
        return 0
    # A Core statement on the Connection skips the ORM's bulk-insert bookkeeping per row.
    result = session.connection().execute(statement, values)
    return len(result.all())


def _save_counts(session: Session, summary: ImportSummary) -> None:
    session.exec(
        update(SendImport)
        .where(col(SendImport.id) == summary.import_id)
        .values(
            rows=summary.rows,
            added=summary.added,
            already_known=summary.already_known,
            rejected=summary.rejected,
        )
    )
