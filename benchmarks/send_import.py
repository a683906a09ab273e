"""Send-log import benchmark: rows per second of ``import_send_log`` over a large CSV export.

Method: write a CSV send log in PACO's report layout (Spanish headers, ";" separators, UTF-8,
Bogotá local times, one recipient per row, every row distinct) with N rows, then time
``import_send_log`` into a new SQLite database, and a second import of the same file, in which
every send is already known. Peak RSS is this process's maximum resident set after both.

Run with ``.venv/bin/python benchmarks/send_import.py [--rows N]``.
"""

import argparse
import csv
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from config.database import utcnow
from reconcile.send_import import import_send_log
from tests.send_log_samples import HEADERS

ROWS = 1_000_000
START = datetime(2025, 1, 6, 8, 0)  # noqa: DTZ001 - the export's local time, without a zone


@dataclass(frozen=True)
class Figures:
    rows: int
    first_seconds: float
    again_seconds: float
    added: int
    peak_rss_mb: float


def write_send_log(path: Path, rows: int) -> None:
    """Write ``rows`` distinct sends, ten per client, as PACO's report exports them."""
    clients = max(1, rows // 10)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(HEADERS)
        for number in range(rows):
            client = number % clients
            sent_at = START + timedelta(seconds=37 * number)
            writer.writerow(
                (
                    "Estado de cuenta",
                    f"N-{client:07d}",
                    f"Torre {client % 9 + 1} Apto {client % 1000:04d}",
                    f"Cliente {client}",
                    f"cliente{client}@correo.example",
                    "Sí",
                    f"{sent_at:%d/%m/%Y %H:%M:%S}",
                    f"Estado de cuenta negocio {client} - cuota {number // clients}",
                )
            )


def measure(rows: int) -> Figures:
    with tempfile.TemporaryDirectory(prefix="acuse-bench-") as name:
        folder = Path(name)
        log_path = folder / "envios.csv"
        write_send_log(log_path, rows)
        url = f"sqlite:///{folder / 'acuse.db'}"
        settings = common.benchmark_settings(folder, url, timezone="America/Bogota")
        project = common.bench_project(settings)
        with common.open_bench_database(url) as database:
            first_seconds, summary = common.timed(
                lambda: import_send_log(database, log_path, project, utcnow())
            )
            again_seconds, _ = common.timed(
                lambda: import_send_log(database, log_path, project, utcnow())
            )
    if summary.added != rows:
        message = f"the import added {summary.added} sends, expected {rows}: {summary.errors[:3]}"
        raise RuntimeError(message)
    return Figures(rows, first_seconds, again_seconds, summary.added, common.peak_rss_mb())


def report(figures: Figures) -> str:
    return "\n".join(
        [
            common.section_heading("Send-log import"),
            "",
            *common.environment_lines(),
            "- Method: `benchmarks/send_import.py`; a CSV in PACO's report layout, one "
            "recipient per row, imported into a new SQLite database, then imported again.",
            "",
            "| rows | first import | rows/s | import again (all known) | rows/s | peak RSS |",
            "|---|---|---|---|---|---|",
            f"| {figures.rows:,} | {figures.first_seconds:,.1f} s "
            f"| {figures.rows / figures.first_seconds:,.0f} "
            f"| {figures.again_seconds:,.1f} s | {figures.rows / figures.again_seconds:,.0f} "
            f"| {figures.peak_rss_mb:,.0f} MB |",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help=f"rows in the send log (default {ROWS:,})")
    arguments = parser.parse_args()
    rows = arguments.rows or common.scaled(ROWS, 100)
    common.record("send-import", report(measure(rows)))


if __name__ == "__main__":
    main()
