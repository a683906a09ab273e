"""The quarantine: list the messages that could not be read, and read stored messages again.

Reprocessing reads a message's raw bytes back from the archive (checking their hash), reads
them with the current code, profile and limits, and replaces the message's classification
and evidence in one transaction. Evidence that the new reading still finds keeps its row, and
so its link to a send, and gets the new fields and trust verdict. Evidence that the new
reading no longer finds is first released by the caller's ``release`` function (reconcile
unlinks its sends) and then deleted. A certificate that another message of the project
already recorded is not inserted twice, as in the ingest.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from config.database import Database, utcnow
from config.settings import ProjectView
from monitor.archive import Archive
from monitor.crashpoints import Step, crash_point
from monitor.ingest import fill_evidence, quarantine_reason, record_evidence
from monitor.models import Evidence, MessageClass, StoredMessage
from monitor.reader_pool import MessageReader
from monitor.reading_results import EvidenceRecord, MessageReading

log = logging.getLogger(__name__)

ReleaseEvidence = Callable[[Session, list[int]], None]
_EvidenceKey = tuple[str | None, ...]


@dataclass(frozen=True)
class QuarantinedMessage:
    """One quarantined message as ``acuse quarantine`` lists it."""

    message_id: int
    project: str
    code: str
    detail: str | None
    from_address: str | None
    subject: str | None
    stored_at: datetime
    origin: str
    location: str
    uid: int | None
    sha256: str


@dataclass(frozen=True)
class ReprocessResult:
    """The changes that reading one stored message again made."""

    message_id: int
    project: str
    before: MessageClass
    after: MessageClass
    reason: str | None
    added: int
    updated: int
    removed: int


def list_quarantined(session: Session, project: str | None = None) -> Iterator[QuarantinedMessage]:
    """Yield the quarantined messages, of one project or of all, oldest first."""
    query = select(StoredMessage).where(
        col(StoredMessage.classification) == MessageClass.QUARANTINED
    )
    if project is not None:
        query = query.where(col(StoredMessage.project) == project)
    for row in session.execute(
        query.order_by(col(StoredMessage.stored_at), col(StoredMessage.id))
    ).scalars():
        assert row.id is not None
        code, _separator, detail = (row.quarantine_reason or "").partition(": ")
        yield QuarantinedMessage(
            message_id=row.id,
            project=row.project,
            code=code,
            detail=detail or None,
            from_address=row.from_address,
            subject=row.subject,
            stored_at=row.stored_at,
            origin=row.origin,
            location=row.location,
            uid=row.uid,
            sha256=row.sha256,
        )


def quarantined_ids(session: Session, project: str | None = None) -> list[int]:
    """Return the ids of the quarantined messages, of one project or of all."""
    return [message.message_id for message in list_quarantined(session, project)]


def message_project(session: Session, message_id: int) -> str | None:
    """Return the project of stored message ``message_id``, or None when there is no such one."""
    return session.execute(
        select(col(StoredMessage.project)).where(col(StoredMessage.id) == message_id)
    ).scalar_one_or_none()


def reprocess_message(
    database: Database,
    archive: Archive,
    project: ProjectView,
    message_id: int,
    *,
    reader: MessageReader,
    release: ReleaseEvidence,
) -> ReprocessResult:
    """Read stored message ``message_id`` of ``project`` again and replace what it recorded.

    Raises monitor.archive.BlobNotFound or ArchiveIntegrityError when its bytes are missing
    from the archive or altered, and LookupError when the project has no such message.
    """
    with database.session() as session:
        stored = session.get(StoredMessage, message_id)
        if stored is None or stored.project != project.code:
            message = f"project {project.code} has no stored message {message_id}"
            raise LookupError(message)
        sha256 = stored.sha256
    raw = archive.read(sha256)
    reading = reader.read_many([(sha256, raw)], project.provider)[sha256]

    with database.write(lock=f"ingest:{project.code}") as session:
        result = _replace_reading(session, project, message_id, reading, release)
        session.flush()
        crash_point(Step.REPROCESS_BEFORE_COMMIT)
    crash_point(Step.REPROCESS_COMMITTED)
    log.info(
        "message reprocessed",
        extra={
            "project": project.code,
            "message_id": message_id,
            "before": result.before.value,
            "after": result.after.value,
        },
    )
    return result


def _replace_reading(
    session: Session,
    project: ProjectView,
    message_id: int,
    reading: MessageReading,
    release: ReleaseEvidence,
) -> ReprocessResult:
    stored = session.get(StoredMessage, message_id)
    assert stored is not None
    before = stored.classification
    now = utcnow()
    stored.classification = reading.classification
    stored.quarantine_reason = quarantine_reason(reading)
    stored.header_message_id = reading.header_message_id
    stored.from_address = reading.from_address
    stored.subject = reading.subject
    stored.header_date = reading.date
    stored.read_at = now
    session.add(stored)

    existing = {
        _record_key(row): row
        for row in session.execute(select(Evidence).where(col(Evidence.message_pk) == message_id))
        .scalars()
        .all()
    }
    updated, unmatched = _update_kept(session, existing, reading.evidence)
    removed_ids = [
        row.id for key, row in existing.items() if key not in updated and row.id is not None
    ]
    if removed_ids:
        release(session, removed_ids)
        for row in existing.values():
            if row.id in removed_ids:
                session.delete(row)
        session.flush()

    remaining = replace(reading, evidence=tuple(unmatched))
    duplicates = record_evidence(session, project, stored, remaining, now)
    added = len(unmatched) - duplicates
    return ReprocessResult(
        message_id=message_id,
        project=project.code,
        before=before,
        after=reading.classification,
        reason=stored.quarantine_reason,
        added=added,
        updated=len(updated),
        removed=len(removed_ids),
    )


def _update_kept(
    session: Session, existing: dict[_EvidenceKey, Evidence], records: tuple[EvidenceRecord, ...]
) -> tuple[set[_EvidenceKey], list[EvidenceRecord]]:
    """Update the rows that the new records still describe; return their keys and the rest."""
    updated: set[_EvidenceKey] = set()
    unmatched: list[EvidenceRecord] = []
    for record in records:
        key = _record_key(record)
        row = existing.get(key)
        if row is None or key in updated:
            unmatched.append(record)
            continue
        fill_evidence(row, record)
        session.add(row)
        updated.add(key)
    session.flush()
    return updated, unmatched


def _record_key(record: EvidenceRecord | Evidence) -> _EvidenceKey:
    """Return the identity of evidence within its message: its certificate id, if it has one."""
    if record.certificate_id:
        return ("certificate", record.certificate_id)
    return (record.source, record.kind.value, record.attachment_sha256, record.recipient)
