"""What one ingest batch records: ledger rows, evidence rows, counts and repeated certificates."""

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from config.database import Database
from config.settings import ProjectView, project_view, settings_from_mapping
from monitor.archive import Archive
from monitor.ingest import IncomingMessage, Ingestor, evidence_values
from monitor.models import Evidence, MessageClass, StoredMessage
from monitor.reading import InProcessReader
from tests.evidence_factory import (
    CertificateFields,
    evidence_email,
    lleida_profile,
    rejection_email,
    unrelated_email,
)

pytestmark = pytest.mark.both_engines

SECOND = CertificateFields(certificate_id="LL-2026-000777", recipient="otra@example.co")


@pytest.fixture
def project(tmp_path: Path) -> ProjectView:
    settings = settings_from_mapping({"projects": [{"code": "TDP2", "name": "Torres"}]}, tmp_path)
    return project_view(settings, "TDP2")


@pytest.fixture
def ingestor(tmp_path: Path, database: Database, project: ProjectView) -> Ingestor:
    return Ingestor(database, Archive(tmp_path / "archive"), project, InProcessReader())


def imap(raw: bytes, uid: int) -> IncomingMessage:
    return IncomingMessage(raw, "imap", "INBOX", uid=uid, uidvalidity=7)


def ledger(database: Database) -> list[StoredMessage]:
    with database.session() as session:
        return list(session.exec(select(StoredMessage).order_by(StoredMessage.id)))


def evidence_rows(database: Database) -> list[Evidence]:
    with database.session() as session:
        return list(session.exec(select(Evidence).order_by(Evidence.id)))


def test_batch_counts_each_class(ingestor: Ingestor) -> None:
    batch = [
        imap(evidence_email(), uid=1),
        imap(rejection_email(SECOND), uid=2),
        imap(unrelated_email(), uid=3),
    ]

    counts = ingestor.ingest_batch(batch)

    assert counts.seen == 3
    assert counts.stored == 3
    assert counts.evidence == 2
    assert counts.unrelated == 1
    assert counts.quarantined == 0
    assert counts.already_stored == 0
    assert counts.duplicate_certificates == 0


def test_batch_rows_match_readings(
    ingestor: Ingestor, database: Database, project: ProjectView
) -> None:
    raws = [evidence_email(), evidence_email(SECOND)]
    readings = InProcessReader().read_many(
        [(str(uid), raw) for uid, raw in enumerate(raws, 1)], lleida_profile()
    )

    ingestor.ingest_batch([imap(raw, uid) for uid, raw in enumerate(raws, 1)])

    messages = ledger(database)
    assert [(row.uid, row.uidvalidity, row.location) for row in messages] == [
        (1, 7, "INBOX"),
        (2, 7, "INBOX"),
    ]
    assert all(row.classification is MessageClass.EVIDENCE for row in messages)
    assert all(row.stored_at.utcoffset() == timedelta(0) for row in messages)
    rows = evidence_rows(database)
    assert [row.message_pk for row in rows] == [message.id for message in messages]
    for row, key in zip(rows, ["1", "2"], strict=True):
        record = readings[key].evidence[0]
        stored = {name: getattr(row, name) for name in evidence_values(record)}
        assert stored == evidence_values(record)
        assert row.project == project.code
        assert row.provider == "lleida"
        assert row.received_at == messages[0].stored_at


def test_repeated_certificate_in_batch_recorded_once(
    ingestor: Ingestor, database: Database
) -> None:
    again = evidence_email(subject="Correo certificado: reenvío del certificado")

    counts = ingestor.ingest_batch([imap(evidence_email(), uid=1), imap(again, uid=2)])

    assert counts.stored == 2
    assert counts.duplicate_certificates == 1
    assert len(ledger(database)) == 2
    assert len(evidence_rows(database)) == 1


def test_repeated_certificate_across_batches(ingestor: Ingestor, database: Database) -> None:
    ingestor.ingest_batch([imap(evidence_email(), uid=1)])
    again = evidence_email(subject="Correo certificado: reenvío del certificado")

    counts = ingestor.ingest_batch([imap(again, uid=2)])

    assert counts.stored == 1
    assert counts.duplicate_certificates == 1
    assert len(evidence_rows(database)) == 1


def test_batch_of_known_messages_inserts_nothing(ingestor: Ingestor, database: Database) -> None:
    batch = [imap(evidence_email(), uid=1), imap(evidence_email(SECOND), uid=2)]
    ingestor.ingest_batch(batch)

    counts = ingestor.ingest_batch(batch)

    assert counts.stored == 0
    assert counts.already_stored == 2
    assert len(ledger(database)) == 2
    assert len(evidence_rows(database)) == 2
