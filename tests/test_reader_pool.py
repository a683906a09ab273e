"""The reader worker pool: the same readings as in-process, with CPU, memory and wall ceilings."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from config.database import Database
from config.provider_settings import ReadingLimits
from config.settings import project_view, settings_from_mapping
from monitor.archive import Archive
from monitor.ingest import IncomingMessage, Ingestor
from monitor.models import MessageClass, StoredMessage
from monitor.reader_pool import ReaderPool, shared_reader_pool
from monitor.reading import InProcessReader
from monitor.reading_results import QuarantineCode
from tests.evidence_factory import PROVIDER_FROM, PdfFile, evidence_email, lleida_profile

# A message whose 150,000 parts take the standard library's parser several seconds of CPU.
PART = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
SLOW_TO_PARSE = (
    f"From: {PROVIDER_FROM}\r\nSubject: Correo certificado: lento\r\n".encode()
    + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    + PART * 150_000
    + b"--b--\r\n"
)
GENEROUS = {"max_mime_parts": 1_000_000, "max_message_bytes": 100_000_000}


@pytest.fixture(scope="module")
def cpu_pool() -> Iterator[ReaderPool]:
    pool = ReaderPool(ReadingLimits(cpu_seconds=1, **GENEROUS))
    yield pool
    pool.close()


def test_pool_reads_like_in_process(cpu_pool: ReaderPool) -> None:
    raw = evidence_email()

    pooled = cpu_pool.read_many([("a", raw)], lleida_profile())["a"]
    local = InProcessReader().read_many([("a", raw)], lleida_profile())["a"]

    assert pooled == local


def test_cpu_limit_quarantines_one_message(cpu_pool: ReaderPool) -> None:
    readings = cpu_pool.read_many(
        [("slow", SLOW_TO_PARSE), ("next", evidence_email())], lleida_profile()
    )

    assert readings["slow"].quarantine_code is QuarantineCode.LIMIT_EXCEEDED
    assert (readings["slow"].quarantine_detail or "").startswith("cpu_seconds")
    assert readings["next"].classification is MessageClass.EVIDENCE


def test_worker_survives_cpu_limit(cpu_pool: ReaderPool) -> None:
    cpu_pool.read_many([("warm", evidence_email())], lleida_profile())
    pid = cpu_pool.workers[0].process.pid

    cpu_pool.read_many([("slow", SLOW_TO_PARSE)], lleida_profile())
    cpu_pool.read_many([("again", evidence_email())], lleida_profile())

    assert cpu_pool.workers[0].process.pid == pid


def test_limit_quarantine_keeps_headers(cpu_pool: ReaderPool) -> None:
    reading = cpu_pool.read_many([("slow", SLOW_TO_PARSE)], lleida_profile())["slow"]

    assert reading.from_address == "noreply@certificado.lleida.net"
    assert reading.subject == "Correo certificado: lento"


def test_dead_idle_worker_replaced(cpu_pool: ReaderPool) -> None:
    cpu_pool.read_many([("warm", evidence_email())], lleida_profile())
    worker = cpu_pool.workers[0]
    worker.process.kill()
    worker.process.wait()

    reading = cpu_pool.read_many([("after", evidence_email())], lleida_profile())["after"]

    assert reading.classification is MessageClass.EVIDENCE
    assert cpu_pool.workers[0].process.pid != worker.process.pid


def test_memory_limit_quarantines_and_replaces_worker() -> None:
    pool = ReaderPool(ReadingLimits(memory_bytes=32 * 2**20, **GENEROUS))
    large = evidence_email(extra_pdfs=[PdfFile("anexo.pdf", b"%PDF-1.4\n" + b"A" * 40_000_000)])
    try:
        readings = pool.read_many([("large", large), ("next", evidence_email())], lleida_profile())
    finally:
        pool.close()

    assert readings["large"].quarantine_code is QuarantineCode.LIMIT_EXCEEDED
    assert (readings["large"].quarantine_detail or "").startswith("memory_bytes")
    assert readings["next"].classification is MessageClass.EVIDENCE


def test_silent_worker_replaced_after_wall_time() -> None:
    pool = ReaderPool(ReadingLimits(wall_seconds=0.001))
    try:
        # The worker is still importing its modules when the deadline passes.
        reading = pool.read_many([("late", evidence_email())], lleida_profile())["late"]
        replacement_running = pool.workers[0].process.poll() is None
    finally:
        pool.close()

    assert reading.quarantine_code is QuarantineCode.LIMIT_EXCEEDED
    assert (reading.quarantine_detail or "").startswith("wall_seconds")
    assert replacement_running


def test_several_workers_read_every_message() -> None:
    pool = ReaderPool(ReadingLimits(workers=2))
    messages = [(str(number), evidence_email()) for number in range(5)]
    try:
        readings = pool.read_many(messages, lleida_profile())
    finally:
        pool.close()

    assert sorted(readings) == ["0", "1", "2", "3", "4"]
    assert {reading.classification for reading in readings.values()} == {MessageClass.EVIDENCE}


def test_close_stops_workers() -> None:
    pool = ReaderPool(ReadingLimits())
    pool.read_many([("a", evidence_email())], lleida_profile())
    process = pool.workers[0].process

    pool.close()

    assert process.poll() is not None


def test_pipeline_uses_worker_pool(tmp_path: Path, database: Database) -> None:
    settings = settings_from_mapping(
        {
            "limits": {"cpu_seconds": 1, **GENEROUS},
            "projects": [{"code": "TDP2", "name": "Torres del Parque"}],
        },
        tmp_path,
    )
    project = project_view(settings, "TDP2")
    ingestor = Ingestor(database, Archive(tmp_path / "archive"), project)

    counts = ingestor.ingest_all([IncomingMessage(SLOW_TO_PARSE, "file", "lento.eml")])

    assert ingestor.reader is shared_reader_pool(project.limits)
    assert counts.quarantined == 1
    with database.session() as session:
        stored = session.exec(select(StoredMessage)).one()
    assert (stored.quarantine_reason or "").startswith("limit_exceeded: cpu_seconds")
