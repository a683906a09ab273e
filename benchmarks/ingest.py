"""Ingest benchmark: acuse's full ingest rate against the raw fetch and parse rates of one mailbox.

Method, all in one run against the same Dovecot mailbox on 127.0.0.1:

1. raw fetch: imapclient logs in, EXAMINEs the folder and fetches every message with
   ``BODY.PEEK[]`` in batches of 100 (the batch size acuse uses by default);
2. raw parse: mail-parser parses each fetched message and pypdf extracts the text of every PDF
   attachment, the work any reader of this evidence must do;
3. acuse ingest: ``acuse poll --no-reconcile`` in a child process, with a new database and
   archive: fetch, archive with fsync, read the evidence, record the ledger and evidence rows.

The raw rate is the rate of fetching and parsing one after the other (1 / (1/fetch + 1/parse)),
and the ratio is acuse's rate divided by it. Peak memory is the child's maximum resident set,
measured for the whole mailbox and for its first half, so growth with mailbox size shows.
Messages are the test factory's invented evidence: nine in ten carry one certificate PDF, one in
ten is a rejection notice without PDF.

Run with ``make bench`` or ``.venv/bin/python benchmarks/ingest.py [--messages N]``, as root (the
benchmark starts Dovecot). Figures are printed and written to benchmarks/RESULTS.md.
"""

import argparse
import base64
import io
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import mailparser
from imapclient import IMAPClient
from pypdf import PdfReader

from tests.dovecot import DovecotServer, MailUser, running_dovecot
from tests.evidence_factory import CertificateFields, evidence_email, rejection_email

FETCH_BATCH = 100
MESSAGES = 2000
TARGET_RATIO = 0.7


@dataclass(frozen=True)
class Figures:
    messages: int
    fetch_rate: float
    parse_rate: float
    raw_rate: float
    ingest_rate: float
    peak_rss_mb: float
    half_peak_rss_mb: float

    @property
    def ratio(self) -> float:
        return self.ingest_rate / self.raw_rate


def build_messages(count: int) -> list[bytes]:
    """Invented evidence: nine certificates for each rejection notice, every one distinct."""
    start = datetime(2026, 11, 3, 13, 0, tzinfo=UTC)
    messages = []
    for number in range(count):
        fields = CertificateFields(
            certificate_id=f"LLD-BENCH-{number:07d}",
            recipient=f"Cliente {number} <cliente{number}@correo.example>",
            subject=f"Estado de cuenta negocio {number} - Torres del Parque",
            message_id=f"bench.{number}@paco.constructora.example",
            sent_at=start + timedelta(seconds=30 * number),
            delivered_at=start + timedelta(seconds=30 * number + 6),
        )
        messages.append(rejection_email(fields) if number % 10 == 9 else evidence_email(fields))
    return messages


def measure_fetch(server: DovecotServer, user: MailUser) -> tuple[float, list[bytes]]:
    started = time.perf_counter()
    with IMAPClient(server.host, port=server.imap_port, ssl=False, timeout=60) as client:
        client.login(user.name, user.password)
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        fetched: list[bytes] = []
        for first in range(0, len(uids), FETCH_BATCH):
            batch = uids[first : first + FETCH_BATCH]
            response = client.fetch(batch, [b"BODY.PEEK[]"])
            fetched.extend(response[uid][b"BODY[]"] for uid in batch)
    elapsed = time.perf_counter() - started
    return len(fetched) / elapsed, fetched


def parse_one(raw: bytes) -> int:
    """Parse a message and extract the text of its PDFs; return the characters extracted."""
    parsed = mailparser.parse_from_bytes(raw)
    characters = len(parsed.body)
    for attachment in parsed.attachments:
        if attachment["mail_content_type"] != "application/pdf":
            continue
        data = base64.b64decode(attachment["payload"])
        reader = PdfReader(io.BytesIO(data))
        characters += sum(len(page.extract_text() or "") for page in reader.pages)
    return characters


def measure_parse(messages: list[bytes]) -> float:
    started = time.perf_counter()
    for raw in messages:
        parse_one(raw)
    return len(messages) / (time.perf_counter() - started)


def write_config(folder: Path, server: DovecotServer, user: MailUser) -> Path:
    config = folder / "acuse.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///acuse.db"

[archive]
path = "archive"

[defaults]
fetch_batch = {FETCH_BATCH}

[[projects]]
code = "BENCH"
name = "Benchmark"

[projects.mailbox]
host = "{server.host}"
port = {server.imap_port}
security = "plain"
username = "{user.name}"
password_file = "{user.password_file}"
timeout = "60s"
""",
        encoding="utf-8",
    )
    return config


def poll_command(config: Path) -> list[str]:
    """Return the ``acuse poll --no-reconcile`` command line for the configuration ``config``."""
    return [
        sys.executable,
        "-m",
        "acuse",
        "--config",
        str(config),
        "--lang",
        "en",
        "poll",
        "--no-reconcile",
    ]


def measure_ingest(server: DovecotServer, user: MailUser, expected: int) -> common.ChildRun:
    """Run ``acuse poll`` on a new database and archive; check that it read every message."""
    with tempfile.TemporaryDirectory(prefix="acuse-bench-") as folder:
        config = write_config(Path(folder), server, user)
        child = common.run_child(poll_command(config))
    if child.returncode != 0 or f"{expected:,} messages read" not in child.stdout:
        message = f"acuse poll failed or read an unexpected count:\n{child.stdout}\n{child.stderr}"
        raise RuntimeError(message)
    return child


def run(count: int) -> Figures:
    messages = build_messages(count)
    with running_dovecot() as server:
        whole = server.create_user()
        half = server.create_user()
        server.append(whole, "INBOX", messages)
        server.append(half, "INBOX", messages[: count // 2])

        fetch_rate, fetched = measure_fetch(server, whole)
        parse_rate = measure_parse(fetched)
        ingest = measure_ingest(server, whole, count)
        half_ingest = measure_ingest(server, half, count // 2)

    raw_rate = 1 / (1 / fetch_rate + 1 / parse_rate)
    return Figures(
        count,
        fetch_rate,
        parse_rate,
        raw_rate,
        count / ingest.seconds,
        ingest.peak_tree_rss_mb,
        half_ingest.peak_tree_rss_mb,
    )


def report(figures: Figures) -> str:
    verdict = common.verdict(figures.ratio >= TARGET_RATIO)
    growth = figures.peak_rss_mb - figures.half_peak_rss_mb
    return "\n".join(
        [
            common.section_heading("Ingest"),
            "",
            *common.environment_lines(),
            f"- Mailbox: {figures.messages} invented evidence messages, 90% with a certificate PDF",
            "- Method: `benchmarks/ingest.py`; raw imapclient fetch, then mail-parser and pypdf "
            "over the fetched bytes, then `acuse poll --no-reconcile` in a child process, all "
            "against the same Dovecot mailbox in one run. Peak RSS sums the child and its reader "
            "processes.",
            "",
            "| measure | value | target |",
            "|---|---|---|",
            f"| raw fetch (imapclient, BODY.PEEK[]) | {figures.fetch_rate:,.0f} msg/s | |",
            f"| raw parse (mail-parser + pypdf text) | {figures.parse_rate:,.0f} msg/s | |",
            f"| raw fetch then parse | {figures.raw_rate:,.0f} msg/s | |",
            f"| acuse ingest (fetch, archive, read, record) | {figures.ingest_rate:,.0f} msg/s | |",
            f"| ingest / raw | {figures.ratio:.0%} | >= {TARGET_RATIO:.0%} ({verdict}) |",
            f"| peak RSS, whole mailbox | {figures.peak_rss_mb:,.0f} MB | |",
            f"| peak RSS, half the mailbox | {figures.half_peak_rss_mb:,.0f} MB "
            f"| growth {growth:+,.0f} MB |",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--messages", type=int, help=f"messages in the mailbox (default {MESSAGES})"
    )
    arguments = parser.parse_args()
    common.record("ingest", report(run(arguments.messages or common.scaled(MESSAGES, 20))))


if __name__ == "__main__":
    main()
