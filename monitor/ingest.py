"""The ingest pipeline: keep each raw message, read its evidence, record both in one transaction.

For every batch a source yields, in this order:

1. ``keep_raw``: write every message to the archive and fsync it (``Archive.store`` + ``sync``);
2. ``read_new``: read the messages that the ledger does not have yet, in the worker processes of
   ``monitor.reader_pool`` under the CPU-time and memory ceilings of ``[limits]`` (parsing
   happens outside any database transaction, so a slow PDF never holds the write lock);
3. ``record``: one transaction inserts the ledger rows and their evidence and moves the IMAP cursor.

``ingest_stream`` overlaps the batches: while the workers read batch N, the calling thread
fetches and archives batch N+1 and records batch N-1. Each batch still goes through the three
steps in order, and batches are recorded in the order the source yields them, so a cursor never
passes a batch that is not recorded. At most ``PIPELINE_DEPTH`` batches wait between archive and
record, which bounds the memory held.

A crash between any two steps loses nothing. The cursor only moves in the transaction that
records the messages, so the next run fetches them again. Storing in the archive again is a
no-op, and so is recording a message again, because of the unique key on (project, sha256).
"""

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlmodel import Session, col

from config.database import Database, utcnow
from config.settings import ProjectView
from monitor.archive import Archive
from monitor.crashpoints import Step, crash_point
from monitor.models import (
    CheckResult,
    Evidence,
    MailboxCursor,
    MessageClass,
    StoredMessage,
    TrustVerdict,
)
from monitor.reader_pool import MessageReader, shared_reader_pool
from monitor.reading_results import Authenticity, EvidenceRecord, MessageReading
from monitor.trust_roots import signature_trust_for

log = logging.getLogger(__name__)

PIPELINE_DEPTH = 2
"""Number of batches that ``Ingestor.ingest_stream`` keeps between archive and record: the one
the workers read and the one waiting to be recorded. Two keep the workers busy while the calling
thread fetches, archives and records. Three measured no faster and keep more messages in memory."""

_Place = tuple[str, int | None, int | None]

# Rows are inserted with Core executemany of plain dicts, because building a SQLModel instance
# per row cost more than the inserts themselves (cProfile of Ingestor.record).
_MESSAGE_TABLE = StoredMessage.__table__  # type: ignore[attr-defined]
_EVIDENCE_TABLE = Evidence.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class IncomingMessage:
    """A raw message from a source, with its place there.

    ``origin`` is ``imap`` or ``file``; ``location`` is the IMAP folder or the file path.
    """

    raw: bytes
    origin: str
    location: str
    uid: int | None = None
    uidvalidity: int | None = None


@dataclass(frozen=True)
class CursorMove:
    """The position of an IMAP folder's cursor once a batch is recorded."""

    folder: str
    uidvalidity: int
    last_uid: int


@dataclass
class IngestCounts:
    """Counts of what ingesting some messages stored, skipped and classified."""

    seen: int = 0
    stored: int = 0
    already_stored: int = 0
    evidence: int = 0
    unrelated: int = 0
    quarantined: int = 0
    duplicate_certificates: int = 0

    def add(self, other: "IngestCounts") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Kept:
    message: IncomingMessage
    sha256: str
    size: int
    reading: MessageReading | None = None


@dataclass
class _InFlight:
    batch: list[_Kept]
    cursor: CursorMove | None
    readings: "Future[dict[str, MessageReading]]"


def load_cursor(database: Database, project: str, folder: str) -> MailboxCursor | None:
    """Return the stored cursor of a project's IMAP folder, if it was ever read."""
    with database.session() as session:
        return session.get(MailboxCursor, (project, folder))


class Ingestor:
    """Runs the pipeline for one project; each call to ``ingest_batch`` is one transaction.

    ``reader`` defaults to the process-wide worker pool for the project's ``[limits]``.
    Raises monitor.trust_roots.TrustRootError when the provider's trust roots cannot be read.
    """

    def __init__(
        self,
        database: Database,
        archive: Archive,
        project: ProjectView,
        reader: MessageReader | None = None,
    ) -> None:
        self.database = database
        self.archive = archive
        self.project = project
        self.reader = reader or shared_reader_pool(project.limits)
        signature_trust_for(project.provider)

    def ingest_batch(
        self, messages: list[IncomingMessage], cursor: CursorMove | None = None
    ) -> IngestCounts:
        """Keep, read and record ``messages``; move ``cursor`` in the same transaction."""
        batch = self.keep_raw(messages)
        self.read_new(batch)
        return self.record(batch, cursor)

    def ingest_stream(
        self, batches: Iterable[tuple[list[IncomingMessage], CursorMove | None]]
    ) -> Iterator[tuple[int, IngestCounts]]:
        """Ingest each ``(messages, cursor)`` of ``batches``, reading one while recording another.

        Yields ``(len(messages), counts)`` as each batch is recorded, in the order of
        ``batches``. The calling thread consumes ``batches``, one batch ahead of the last one
        recorded. When the caller stops iterating, the batches still in flight are not
        recorded, so their cursors do not move.
        """
        window: deque[_InFlight] = deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="acuse-read") as executor:
            # The workers start while the first batch is fetched and archived; a failure to
            # start them comes back from the first read.
            executor.submit(self.reader.start)
            try:
                for messages, cursor in batches:
                    batch = self.keep_raw(messages)
                    unread = self._unread(batch)
                    readings = executor.submit(self.reader.read_many, unread, self.project.provider)
                    window.append(_InFlight(batch, cursor, readings))
                    if len(window) >= PIPELINE_DEPTH:
                        yield self._finish(window.popleft())
                while window:
                    yield self._finish(window.popleft())
            finally:
                for pending in window:
                    pending.readings.cancel()

    def ingest_all(
        self,
        messages: Iterable[IncomingMessage],
        batch_size: int = 100,
        progress: Callable[[int], None] | None = None,
    ) -> IngestCounts:
        """Ingest a stream of messages in batches of ``batch_size``.

        ``progress`` receives the size of each batch once it is recorded.
        """
        total = IngestCounts()
        chunks = ((chunk, None) for chunk in _chunks(messages, batch_size))
        for size, counts in self.ingest_stream(chunks):
            total.add(counts)
            if progress is not None:
                progress(size)
        return total

    def keep_raw(self, messages: list[IncomingMessage]) -> list[_Kept]:
        batch = []
        for message in messages:
            blob = self.archive.store(message.raw, defer_sync=True)
            batch.append(_Kept(message, blob.sha256, blob.size))
        self.archive.sync()
        crash_point(Step.ARCHIVE_SYNCED)
        return batch

    def read_new(self, batch: list[_Kept]) -> None:
        readings = self.reader.read_many(self._unread(batch), self.project.provider)
        _attach(batch, readings)

    def _unread(self, batch: list[_Kept]) -> list[tuple[str, bytes]]:
        """Return ``(sha256, raw)`` of each message of ``batch`` the ledger does not have, once."""
        known = self._known_hashes({kept.sha256 for kept in batch})
        unread: dict[str, bytes] = {}
        for kept in batch:
            if kept.sha256 not in known:
                unread.setdefault(kept.sha256, kept.message.raw)
        return list(unread.items())

    def _finish(self, flight: _InFlight) -> tuple[int, IngestCounts]:
        _attach(flight.batch, flight.readings.result())
        return len(flight.batch), self.record(flight.batch, flight.cursor)

    def record(self, batch: list[_Kept], cursor: CursorMove | None) -> IngestCounts:
        counts = IngestCounts(seen=len(batch))
        now = utcnow()
        # The lock makes the check for known hashes and the inserts one step, so two processes
        # that ingest the same message at once store it once.
        with self.database.write(lock=f"ingest:{self.project.code}") as session:
            recorded: set[str] = self._known_hashes({kept.sha256 for kept in batch}, session)
            fresh: list[_Kept] = []
            for kept in batch:
                if kept.sha256 in recorded or kept.reading is None:
                    counts.already_stored += 1
                    continue
                fresh.append(kept)
                recorded.add(kept.sha256)
            self._record_messages(session, fresh, now, counts)
            crash_point(Step.LEDGER_RECORDED)
            if cursor is not None:
                self._move_cursor(session, cursor, now)
            session.flush()
            crash_point(Step.LEDGER_BEFORE_COMMIT)
        crash_point(Step.LEDGER_COMMITTED)

        self._log_batch(counts, cursor)
        return counts

    def _known_hashes(self, hashes: set[str], session: Session | None = None) -> set[str]:
        if not hashes:
            return set()
        query = select(col(StoredMessage.sha256)).where(
            col(StoredMessage.project) == self.project.code,
            col(StoredMessage.sha256).in_(hashes),
        )
        if session is not None:
            return set(session.execute(query).scalars())
        with self.database.session() as reader:
            return set(reader.execute(query).scalars())

    def _record_messages(
        self, session: Session, batch: list[_Kept], now: datetime, counts: IngestCounts
    ) -> None:
        """Insert the rows of ``batch`` and their evidence, with one query per kind of lookup."""
        if not batch:
            return
        taken_places = self._taken_places(session, batch)
        message_rows = [self._message_row(kept, taken_places, now) for kept in batch]
        session.execute(insert(_MESSAGE_TABLE), message_rows)
        message_ids = self._message_ids(session, {kept.sha256 for kept in batch})
        certificates = _known_certificates(
            session, self.project, _certificate_ids(kept.reading for kept in batch)
        )
        evidence_rows: list[dict[str, Any]] = []
        for kept in batch:
            reading = kept.reading
            assert reading is not None
            counts.stored += 1
            self._count_class(reading.classification, counts)
            rows, duplicates = _evidence_rows(
                self.project, message_ids[kept.sha256], reading, now, certificates
            )
            evidence_rows.extend(rows)
            counts.duplicate_certificates += duplicates
            log.info(
                "message stored",
                extra={
                    "project": self.project.code,
                    "location": kept.message.location,
                    "uid": kept.message.uid,
                    "sha256": kept.sha256,
                    "classification": reading.classification.value,
                    "evidence": len(reading.evidence),
                },
            )
        if evidence_rows:
            session.execute(insert(_EVIDENCE_TABLE), evidence_rows)

    def _message_ids(self, session: Session, hashes: set[str]) -> dict[str, int]:
        """Return the ledger id of the project's message with each of ``hashes``, by hash."""
        query = select(col(StoredMessage.sha256), col(StoredMessage.id)).where(
            col(StoredMessage.project) == self.project.code,
            col(StoredMessage.sha256).in_(hashes),
        )
        return dict(session.execute(query).all())

    def _message_row(self, kept: _Kept, taken_places: set[_Place], now: datetime) -> dict[str, Any]:
        reading = kept.reading
        assert reading is not None
        message = kept.message
        uid = message.uid
        place = (message.location, message.uidvalidity, uid)
        if uid is not None and place in taken_places:
            # The server handed out a UID that another message had under the same UIDVALIDITY.
            # The content hash keeps the two apart; the place of the newer one is not recorded.
            log.warning(
                "server reused a UID for different content",
                extra={"project": self.project.code, "folder": message.location, "uid": uid},
            )
            uid = None
        elif uid is not None:
            taken_places.add(place)
        return {
            "project": self.project.code,
            "origin": message.origin,
            "location": message.location,
            "uidvalidity": message.uidvalidity if uid is not None else None,
            "uid": uid,
            "sha256": kept.sha256,
            "size": kept.size,
            "header_message_id": reading.header_message_id,
            "from_address": reading.from_address,
            "subject": reading.subject,
            "header_date": reading.date,
            "stored_at": now,
            "classification": reading.classification,
            "quarantine_reason": quarantine_reason(reading),
            "read_at": now,
        }

    def _taken_places(self, session: Session, batch: list[_Kept]) -> set[_Place]:
        """Return the IMAP places of ``batch`` that the ledger already gives to some message."""
        places = {
            (kept.message.location, kept.message.uidvalidity, kept.message.uid)
            for kept in batch
            if kept.message.uid is not None
        }
        if not places:
            return set()
        query = select(
            col(StoredMessage.location), col(StoredMessage.uidvalidity), col(StoredMessage.uid)
        ).where(
            col(StoredMessage.project) == self.project.code,
            tuple_(
                col(StoredMessage.location), col(StoredMessage.uidvalidity), col(StoredMessage.uid)
            ).in_(places),
        )
        return {
            (location, uidvalidity, uid) for location, uidvalidity, uid in session.execute(query)
        }

    @staticmethod
    def _count_class(classification: MessageClass, counts: IngestCounts) -> None:
        if classification is MessageClass.EVIDENCE:
            counts.evidence += 1
        elif classification is MessageClass.UNRELATED:
            counts.unrelated += 1
        else:
            counts.quarantined += 1

    def _move_cursor(self, session: Session, cursor: CursorMove, now: datetime) -> None:
        session.merge(
            MailboxCursor(
                project=self.project.code,
                folder=cursor.folder,
                uidvalidity=cursor.uidvalidity,
                last_uid=cursor.last_uid,
                updated_at=now,
            )
        )

    def _log_batch(self, counts: IngestCounts, cursor: CursorMove | None) -> None:
        log.debug(
            "batch recorded",
            extra={
                "project": self.project.code,
                "seen": counts.seen,
                "stored": counts.stored,
                "last_uid": cursor.last_uid if cursor else None,
            },
        )


def quarantine_reason(reading: MessageReading) -> str | None:
    """Return the ledger's quarantine reason, ``code: detail``, or None when not quarantined."""
    if reading.quarantine_code is None:
        return None
    if reading.quarantine_detail:
        return f"{reading.quarantine_code.value}: {reading.quarantine_detail}"
    return reading.quarantine_code.value


def record_evidence(
    session: Session,
    project: ProjectView,
    message: StoredMessage,
    reading: MessageReading,
    now: datetime,
) -> int:
    """Insert the evidence of ``reading`` for ``message``; return how many certificates were known.

    A certificate id that the project already has (the provider sent the same certificate in
    two messages) is not inserted twice.
    """
    assert message.id is not None
    known = _known_certificates(session, project, _certificate_ids([reading]))
    rows, duplicates = _evidence_rows(project, message.id, reading, now, known)
    if rows:
        session.execute(insert(_EVIDENCE_TABLE), rows)
    return duplicates


def _evidence_rows(
    project: ProjectView,
    message_id: int,
    reading: MessageReading,
    now: datetime,
    known_certificates: set[str],
) -> tuple[list[dict[str, Any]], int]:
    """Build an ``evidence`` row for each record of ``reading`` whose certificate is new.

    ``known_certificates`` contains the project's certificate ids, at least those of
    ``reading``, and receives the ids of the new rows. Returns the rows and how many records
    were left out because their certificate id was known.
    """
    rows: list[dict[str, Any]] = []
    duplicates = 0
    for record in reading.evidence:
        if record.certificate_id:
            if record.certificate_id in known_certificates:
                duplicates += 1
                continue
            known_certificates.add(record.certificate_id)
        rows.append(
            {
                "message_pk": message_id,
                "project": project.code,
                "provider": project.settings.provider,
                "received_at": now,
                **evidence_values(record),
            }
        )
    return rows, duplicates


def fill_evidence(evidence: Evidence, record: EvidenceRecord) -> None:
    """Copy what ``record`` read, and its authenticity checks, into the ``evidence`` row."""
    for name, value in evidence_values(record).items():
        setattr(evidence, name, value)


def evidence_values(record: EvidenceRecord) -> dict[str, Any]:
    """Return the ``evidence`` columns that ``record`` sets: what it read, and its checks."""
    return {
        "kind": record.kind,
        "source": record.source,
        "certificate_id": record.certificate_id,
        "sender": record.sender,
        "recipient": record.recipient,
        "subject": record.subject,
        "original_message_id": record.original_message_id,
        "sent_at": record.sent_at,
        "delivered_at": record.delivered_at,
        "status_text": record.status_text,
        "smtp_code": record.smtp_code,
        "smtp_detail": record.smtp_detail,
        "reason": record.reason,
        "content_hash": record.content_hash,
        "attachment_name": record.attachment_name,
        "attachment_sha256": record.attachment_sha256,
        "raw_text": record.raw_text,
        **_authenticity_values(record.authenticity),
    }


def _authenticity_values(authenticity: Authenticity | None) -> dict[str, Any]:
    if authenticity is None:
        return {
            "dkim_result": CheckResult.OFF,
            "dkim_domain": None,
            "dkim_selector": None,
            "signature_result": CheckResult.OFF,
            "signature_signer": None,
            "signature_time": None,
            "cross_check_result": CheckResult.OFF,
            "trust_verdict": TrustVerdict.UNCHECKED,
            "trust_reasons": None,
        }
    return {
        "dkim_result": authenticity.dkim.result,
        "dkim_domain": authenticity.dkim.domain,
        "dkim_selector": authenticity.dkim.selector,
        "signature_result": authenticity.signature.result,
        "signature_signer": authenticity.signature.signer,
        "signature_time": authenticity.signature.signed_at,
        "cross_check_result": authenticity.cross_check,
        "trust_verdict": authenticity.verdict,
        "trust_reasons": "\n".join(authenticity.reasons) or None,
    }


def _attach(batch: list[_Kept], readings: dict[str, MessageReading]) -> None:
    for kept in batch:
        kept.reading = readings.get(kept.sha256)


def _certificate_ids(readings: Iterable[MessageReading | None]) -> set[str]:
    return {
        record.certificate_id
        for reading in readings
        if reading is not None
        for record in reading.evidence
        if record.certificate_id
    }


def _known_certificates(
    session: Session, project: ProjectView, certificate_ids: set[str]
) -> set[str]:
    """Return those of ``certificate_ids`` that the project's evidence already has."""
    if not certificate_ids:
        return set()
    query = select(col(Evidence.certificate_id)).where(
        col(Evidence.project) == project.code,
        col(Evidence.provider) == project.settings.provider,
        col(Evidence.certificate_id).in_(certificate_ids),
    )
    return {certificate_id for certificate_id in session.execute(query).scalars() if certificate_id}


def _chunks(messages: Iterable[IncomingMessage], size: int) -> Iterator[list[IncomingMessage]]:
    chunk: list[IncomingMessage] = []
    for message in messages:
        chunk.append(message)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
