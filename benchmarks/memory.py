"""Memory benchmark: peak RSS of a first poll of a mailbox with 100,000 messages.

Method: one Dovecot user whose INBOX contains N distinct provider notices (service rejections
without a PDF, from the test factory), polled once by ``acuse poll --no-reconcile`` in a child
process with a new database and archive. Notices keep the mailbox quick to build and to read,
so the run measures what grows with the mailbox (the UID list, batches, the ledger) rather than
PDF parsing; benchmarks/ingest.py measures a mailbox of certificates with PDFs. The peak is
sampled over the child and its reader processes together, and also given for the largest
single process. The same poll over half the mailbox shows how the peak grows with size.

Run as root (it starts Dovecot): ``.venv/bin/python benchmarks/memory.py [--messages N]``.
"""

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from ingest import measure_ingest

from tests.dovecot import running_dovecot
from tests.evidence_factory import CertificateFields, rejection_email

MESSAGES = 100_000
TARGET_MB = 300.0


@dataclass(frozen=True)
class Figures:
    messages: int
    whole: common.ChildRun
    half: common.ChildRun


def notices(count: int) -> list[bytes]:
    start = datetime(2026, 11, 3, 13, 0, tzinfo=UTC)
    return [
        rejection_email(
            CertificateFields(
                certificate_id=f"LLD-MEM-{number:07d}",
                recipient=f"Cliente {number} <cliente{number}@correo.example>",
                subject=f"Estado de cuenta negocio {number} - Torres del Parque",
                message_id=f"mem.{number}@paco.constructora.example",
                sent_at=start + timedelta(seconds=30 * number),
                delivered_at=start + timedelta(seconds=30 * number + 6),
            )
        )
        for number in range(count)
    ]


def run(count: int) -> Figures:
    messages = notices(count)
    with running_dovecot() as server:
        whole_user, half_user = server.create_user(), server.create_user()
        server.append(whole_user, "INBOX", messages)
        server.append(half_user, "INBOX", messages[: count // 2])
        whole = measure_ingest(server, whole_user, count)
        half = measure_ingest(server, half_user, count // 2)
    return Figures(count, whole, half)


def report(figures: Figures) -> str:
    whole, half = figures.whole, figures.half
    met = whole.peak_tree_rss_mb < TARGET_MB
    return "\n".join(
        [
            common.section_heading("Memory of a first poll"),
            "",
            *common.environment_lines(),
            f"- Mailbox: {figures.messages:,} provider notices without PDF",
            "- Method: `benchmarks/memory.py`; `acuse poll --no-reconcile` in a child process, "
            "RSS of the child and its reader processes sampled every 0.25 s.",
            "",
            "| mailbox | peak RSS, process tree | target | largest process | poll time | msg/s |",
            "|---|---|---|---|---|---|",
            f"| {figures.messages:,} | {whole.peak_tree_rss_mb:,.0f} MB "
            f"| < {TARGET_MB:.0f} MB ({common.verdict(met)}) | {whole.peak_rss_mb:,.0f} MB "
            f"| {whole.seconds:,.0f} s | {figures.messages / whole.seconds:,.0f} |",
            f"| {figures.messages // 2:,} | {half.peak_tree_rss_mb:,.0f} MB | "
            f"| {half.peak_rss_mb:,.0f} MB | {half.seconds:,.0f} s "
            f"| {figures.messages // 2 / half.seconds:,.0f} |",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, help=f"messages (default {MESSAGES:,})")
    arguments = parser.parse_args()
    common.record("memory", report(run(arguments.messages or common.scaled(MESSAGES, 20))))


if __name__ == "__main__":
    main()
