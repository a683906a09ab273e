"""The ledger's unique keys: a UID reused for other content, and the same content twice."""

import logging
from pathlib import Path

import pytest
from sqlmodel import select

from config.database import Database
from config.settings import ProjectView, project_view, settings_from_mapping
from monitor.archive import Archive
from monitor.ingest import IncomingMessage, Ingestor
from monitor.models import StoredMessage
from monitor.reading import InProcessReader
from tests.evidence_factory import evidence_email, rejection_email

pytestmark = pytest.mark.both_engines


@pytest.fixture
def ingestor(tmp_path: Path, database: Database) -> Ingestor:
    settings = settings_from_mapping({"projects": [{"code": "TDP2", "name": "Torres"}]}, tmp_path)
    project: ProjectView = project_view(settings, "TDP2")
    return Ingestor(database, Archive(tmp_path / "archive"), project, InProcessReader())


def imap(raw: bytes, uid: int, uidvalidity: int = 7) -> IncomingMessage:
    return IncomingMessage(raw, "imap", "INBOX", uid=uid, uidvalidity=uidvalidity)


def stored(database: Database) -> list[StoredMessage]:
    with database.session() as session:
        return list(session.exec(select(StoredMessage).order_by(StoredMessage.id)))


def test_reused_uid_keeps_both_messages(
    ingestor: Ingestor, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    ingestor.ingest_batch([imap(evidence_email(), uid=1)])

    with caplog.at_level(logging.WARNING):
        ingestor.ingest_batch([imap(rejection_email(), uid=1)])

    rows = stored(database)
    assert len(rows) == 2
    assert (rows[0].uid, rows[1].uid) == (1, None)
    assert "server reused a UID for different content" in caplog.text


def test_same_content_under_new_uid_stored_once(ingestor: Ingestor, database: Database) -> None:
    ingestor.ingest_batch([imap(evidence_email(), uid=1)])

    counts = ingestor.ingest_batch([imap(evidence_email(), uid=9)])

    assert counts.already_stored == 1
    assert len(stored(database)) == 1


def test_same_content_under_new_uidvalidity_stored_once(
    ingestor: Ingestor, database: Database
) -> None:
    ingestor.ingest_batch([imap(evidence_email(), uid=1)])

    counts = ingestor.ingest_batch([imap(evidence_email(), uid=1, uidvalidity=8)])

    assert counts.already_stored == 1
    assert len(stored(database)) == 1
