"""Reconciliation benchmark: sends per second for a full pass, and an incremental pass.

Method, per engine (SQLite in a temp folder; PostgreSQL in a database created for the run and
dropped after it) and per size N of 10,000 / 100,000 / 1,000,000 sends:

1. load N sends of one project straight into the tables (not timed): ten sends per recipient,
   one every 37 seconds, half with a Message-ID; evidence for 95% of them, 93% delivered, 5%
   delivery failed, 2% rejected, sent 30 seconds after the send and naming its Message-ID when
   it has one; 1% more evidence with no send (orphans);
2. time one full ``reconcile_project`` pass, which matches every send and stores every state;
3. time the median of three more passes with nothing changed (the incremental pass);
4. add certificates for LATE_EVIDENCE of the sends without evidence and time one more pass,
   which matches only their recipients.

Run with ``.venv/bin/python benchmarks/reconciliation.py``; ``BENCH_SCALE=0.01`` shrinks the
sizes, ``--no-postgres`` skips PostgreSQL.
"""

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import psycopg
from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

from config.database import Database
from config.errors import AcuseError
from monitor.models import Evidence, EvidenceKind, MessageClass, StoredMessage, TrustVerdict
from reconcile.models import Send, SendState
from reconcile.reconciliation import reconcile_project, subject_normalizer

SIZES = (10_000, 100_000, 1_000_000)
TARGET_SECONDS_1M = 60.0
TARGET_INCREMENTAL_SECONDS = 1.0
SENDS_PER_RECIPIENT = 10
START = datetime(2025, 1, 6, 13, 0, tzinfo=UTC)
AS_OF = START + timedelta(days=800)
LOAD_BATCH = 10_000
LATE_EVIDENCE = 100
# Message UIDs and hashes of the late evidence start here, above those of the loaded ones.
LATE_UID = 10**9


@dataclass(frozen=True)
class Figures:
    engine: str
    sends: int
    load_seconds: float
    full_seconds: float
    incremental_seconds: float
    added_seconds: float
    matched: int

    @property
    def sends_per_second(self) -> float:
        return self.sends / self.full_seconds


def _send_time(number: int) -> datetime:
    return START + timedelta(seconds=37 * number)


def _send_rows(count: int, import_time: datetime) -> Iterator[dict[str, Any]]:
    recipients = max(1, count // SENDS_PER_RECIPIENT)
    for number in range(count):
        recipient = number % recipients
        yield {
            "project": "BENCH",
            "send_key": f"bench-{number}",
            "recipient": f"cliente{recipient}@correo.example",
            "subject": f"Estado de cuenta negocio {recipient} - cuota {number // recipients}",
            "sent_at": _send_time(number),
            "message_id": f"<bench.{number}@paco.example>" if number % 2 == 0 else None,
            "lleida_copied": True,
            "imported_at": import_time,
            "state": SendState.PENDING,
        }


def _evidence_kind(number: int) -> EvidenceKind:
    slot = number % 100
    if slot < 93:
        return EvidenceKind.DELIVERED
    if slot < 98:
        return EvidenceKind.DELIVERY_FAILED
    return EvidenceKind.REJECTED


def _evidence_numbers(count: int) -> Iterator[tuple[int, bool]]:
    """Yield (send number, has a send) for each piece of evidence."""
    for number in range(count):
        if number % 20 != 19:
            yield number, True
    for extra in range(count // 100):
        yield count + extra, False


def _message_row(number: int, import_time: datetime) -> dict[str, Any]:
    return {
        "project": "BENCH",
        "origin": "imap",
        "location": "INBOX",
        "uidvalidity": 1,
        "uid": number + 1,
        "sha256": f"{number:064x}",
        "size": 50_000,
        "stored_at": import_time,
        "classification": MessageClass.EVIDENCE,
        "read_at": import_time,
    }


def _evidence_row(
    number: int, has_send: bool, message_pk: int, count: int, import_time: datetime
) -> dict[str, Any]:
    recipients = max(1, count // SENDS_PER_RECIPIENT)
    recipient = number % recipients
    subject = f"Estado de cuenta negocio {recipient} - cuota {number // recipients}"
    if not has_send:
        subject = f"Aviso sin envio {number}"
    sent_at = _send_time(number) + timedelta(seconds=30)
    return {
        "message_pk": message_pk,
        "project": "BENCH",
        "provider": "lleida",
        "kind": _evidence_kind(number),
        "source": "pdf",
        "certificate_id": f"LLD-{number:08d}",
        "recipient": f"cliente{recipient}@correo.example",
        "subject": subject,
        "original_message_id": f"<bench.{number}@paco.example>"
        if has_send and number % 2 == 0
        else None,
        "sent_at": sent_at,
        "delivered_at": sent_at + timedelta(seconds=6),
        "received_at": sent_at + timedelta(minutes=2),
        "trust_verdict": TrustVerdict.VERIFIED,
    }


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == LOAD_BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load(database: Database, count: int) -> None:
    """Insert ``count`` sends and their evidence with Core executemany, in batches."""
    tables = SQLModel.metadata.tables
    now = START + timedelta(days=1)
    for chunk in _chunks(_send_rows(count, now)):
        with database.write() as session:
            session.connection().execute(insert(tables[Send.__tablename__]), chunk)

    numbers = list(_evidence_numbers(count))
    for first in range(0, len(numbers), LOAD_BATCH):
        part = numbers[first : first + LOAD_BATCH]
        messages = [_message_row(number, now) for number, _has_send in part]
        with database.write() as session:
            connection = session.connection()
            result = connection.execute(
                insert(tables[StoredMessage.__tablename__]).returning(
                    tables[StoredMessage.__tablename__].c.id, sort_by_parameter_order=True
                ),
                messages,
            )
            message_ids = [row[0] for row in result]
            evidence = [
                _evidence_row(number, has_send, message_pk, count, now)
                for (number, has_send), message_pk in zip(part, message_ids, strict=True)
            ]
            connection.execute(insert(tables[Evidence.__tablename__]), evidence)


def add_late_evidence(database: Database, count: int, late: int) -> None:
    """Add evidence for ``late`` of the sends loaded without any, as a poll would."""
    tables = SQLModel.metadata.tables
    now = START + timedelta(days=2)
    numbers = [number for number in range(count) if number % 20 == 19][:late]
    with database.write() as session:
        connection = session.connection()
        for number in numbers:
            message = _message_row(number, now) | {
                "uid": LATE_UID + number,
                "sha256": f"{LATE_UID + number:064x}",
            }
            message_pk = connection.execute(
                insert(tables[StoredMessage.__tablename__]), message
            ).inserted_primary_key[0]
            row = _evidence_row(number, True, message_pk, count, now)
            row["certificate_id"] = f"LLD-LATE-{number:08d}"
            connection.execute(insert(tables[Evidence.__tablename__]), row)


def measure(engine: str, url_factory: AbstractContextManager[str], count: int) -> Figures:
    with url_factory as url, common.open_bench_database(url) as database:
        settings = common.benchmark_settings(Path(tempfile.gettempdir()), url)
        project = common.bench_project(settings)
        normalize = subject_normalizer(project)

        load_seconds, _ = common.timed(lambda: load(database, count))
        full_seconds, summary = common.timed(
            lambda: reconcile_project(database, project, normalize, as_of=AS_OF)
        )
        incremental = common.median_seconds(
            lambda: reconcile_project(database, project, normalize, as_of=AS_OF), runs=3
        )
        add_late_evidence(database, count, LATE_EVIDENCE)
        added_seconds, added = common.timed(
            lambda: reconcile_project(database, project, normalize, as_of=AS_OF)
        )
    if added.matched != min(LATE_EVIDENCE, count // 20):
        message = f"the pass after late evidence matched {added.matched} sends"
        raise RuntimeError(message)
    return Figures(
        engine, count, load_seconds, full_seconds, incremental, added_seconds, summary.matched
    )


def run(sizes: list[int], postgres: bool) -> tuple[list[Figures], list[str]]:
    """Measure every size on SQLite and, when ``postgres`` is true, on PostgreSQL.

    A PostgreSQL run that fails is reported as a note instead of stopping the benchmark. The
    section in RESULTS.md is rewritten after each measurement, so a long run that is stopped
    keeps what it measured.
    """
    figures: list[Figures] = []
    notes: list[str] = []
    for count in sizes:
        with tempfile.TemporaryDirectory(prefix="acuse-bench-") as folder:
            figures.append(measure("SQLite", common.sqlite_url(Path(folder)), count))
            print(_row(figures[-1]), flush=True)
            common.record("reconciliation", report(figures, notes), echo=False)
        if not postgres:
            continue
        try:
            figures.append(measure("PostgreSQL", common.postgres_url(), count))
        except (psycopg.Error, SQLAlchemyError, AcuseError) as exc:
            notes.append(f"PostgreSQL, {count:,} sends: failed with {type(exc).__name__}: {exc}")
            print(notes[-1], flush=True)
            continue
        print(_row(figures[-1]), flush=True)
        common.record("reconciliation", report(figures, notes), echo=False)
    return figures, notes


def _target(figures: Figures) -> str:
    if figures.engine != "SQLite" or figures.sends != max(SIZES):
        return ""
    met = figures.full_seconds < TARGET_SECONDS_1M
    return f"< {TARGET_SECONDS_1M:.0f} s ({common.verdict(met)})"


def _row(figures: Figures) -> str:
    incremental_met = figures.incremental_seconds < TARGET_INCREMENTAL_SECONDS
    return (
        f"| {figures.engine} | {figures.sends:,} | {figures.matched:,} "
        f"| {figures.full_seconds:,.1f} s | {figures.sends_per_second:,.0f} | {_target(figures)} "
        f"| {figures.incremental_seconds * 1000:,.0f} ms "
        f"| < {TARGET_INCREMENTAL_SECONDS * 1000:.0f} ms ({common.verdict(incremental_met)}) "
        f"| {figures.added_seconds * 1000:,.0f} ms | {figures.load_seconds:,.0f} s |"
    )


def report(figures: list[Figures], notes: list[str]) -> str:
    lines = [
        common.section_heading("Reconciliation"),
        "",
        *common.environment_lines(),
        "- Method: `benchmarks/reconciliation.py`; one full pass over freshly loaded sends and "
        "evidence (95% of sends have evidence, half of them by Message-ID, plus 1% orphan "
        "evidence), then the median of three passes with nothing changed, then one pass after "
        f"certificates arrive for {LATE_EVIDENCE} of the sends without evidence.",
        "",
        "| engine | sends | matched | full pass | sends/s | target | incremental pass, "
        f"nothing new | target | pass after {LATE_EVIDENCE} late certificates | load (untimed) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(_row(item) for item in figures),
        "",
        *(f"- {note}" for note in notes),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-postgres", action="store_true", help="run on SQLite only")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="send counts (default 10,000 100,000 1,000,000)"
    )
    arguments = parser.parse_args()
    sizes = arguments.sizes or [common.scaled(size, 100) for size in SIZES]
    common.record("reconciliation", report(*run(sizes, not arguments.no_postgres)))


if __name__ == "__main__":
    main()
