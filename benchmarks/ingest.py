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
benchmark starts Dovecot). Figures are printed and appended to benchmarks/RESULTS.md.
"""

import argparse
import base64
import io
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mailparser
from imapclient import IMAPClient
from pypdf import PdfReader

from tests.dovecot import DovecotServer, MailUser, running_dovecot
from tests.evidence_factory import CertificateFields, evidence_email, rejection_email

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
FETCH_BATCH = 100
TARGET_RATIO = 0.5


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


def measure_ingest(server: DovecotServer, user: MailUser, expected: int) -> tuple[float, float]:
    """Run ``acuse poll`` on a new database; return messages per second and peak RSS in MB."""
    with tempfile.TemporaryDirectory(prefix="acuse-bench-") as folder:
        config = write_config(Path(folder), server, user)
        command = [
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
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        output = process.stdout.read().decode() if process.stdout else ""
        errors = process.stderr.read().decode() if process.stderr else ""
        if os.waitstatus_to_exitcode(status) != 0 or f"{expected} messages read" not in output:
            message = f"acuse poll failed or read an unexpected count:\n{output}\n{errors}"
            raise RuntimeError(message)
    # ru_maxrss is in kilobytes on Linux.
    return expected / elapsed, usage.ru_maxrss / 1024


def run(count: int) -> Figures:
    messages = build_messages(count)
    with running_dovecot() as server:
        whole = server.create_user()
        half = server.create_user()
        server.append(whole, "INBOX", messages)
        server.append(half, "INBOX", messages[: count // 2])

        fetch_rate, fetched = measure_fetch(server, whole)
        parse_rate = measure_parse(fetched)
        ingest_rate, peak = measure_ingest(server, whole, count)
        _, half_peak = measure_ingest(server, half, count // 2)

    raw_rate = 1 / (1 / fetch_rate + 1 / parse_rate)
    return Figures(count, fetch_rate, parse_rate, raw_rate, ingest_rate, peak, half_peak)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, {memory_gb:.0f} GiB RAM, {system}"


def versions() -> str:
    dovecot = subprocess.run(
        ["dovecot", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    packages = ("imapclient", "mail-parser", "pypdf", "sqlalchemy")
    listed = ", ".join(f"{name} {version(name)}" for name in packages)
    python = f"Python {platform.python_version()}"
    return f"{python}, {listed}, Dovecot {dovecot}, SQLite {sqlite3.sqlite_version}"


def report(figures: Figures) -> str:
    verdict = "met" if figures.ratio >= TARGET_RATIO else "NOT met"
    growth = figures.peak_rss_mb - figures.half_peak_rss_mb
    return "\n".join(
        [
            f"### Ingest, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"- Machine: {machine()}",
            f"- Versions: {versions()}",
            f"- Mailbox: {figures.messages} invented evidence messages, 90% with a certificate PDF",
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
        "--messages", type=int, default=2000, help="messages in the mailbox (default 2000)"
    )
    parser.add_argument(
        "--no-record", action="store_true", help="print only; do not append to RESULTS.md"
    )
    arguments = parser.parse_args()

    text = report(run(arguments.messages))
    print(text)
    if not arguments.no_record:
        with RESULTS.open("a", encoding="utf-8") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
