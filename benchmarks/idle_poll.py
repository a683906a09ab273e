"""Idle-poll benchmark: the cost of a pass over N mailboxes that have no new mail.

Method: one Dovecot (tests/dovecot.py) with N users, each with one message in INBOX; N
projects, one per user, in one SQLite database. The daemon's MailboxPoller with kept
connections (acuse.polling.MailboxConnections) polls every project once, untimed, which logs in,
examines and stores the message. Then PASSES idle passes poll every project again, one after the
other in one thread, as the daemon's jobs do when they run back to back. Each pass is timed
(median reported), and a relaying proxy (tests/tcp_proxy.py) between acuse and Dovecot counts
the tagged responses, that is the round trips, of the idle passes. The proxy's relaying is part
of the measured time. Each idle pass also records every mailbox's health in the database.

Run as root (it starts Dovecot): ``.venv/bin/python benchmarks/idle_poll.py``.
"""

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from acuse.polling import MailboxConnections, MailboxPoller
from config.settings import Settings, project_views
from monitor.archive import Archive
from tests.dovecot import DovecotServer, MailUser, running_dovecot
from tests.tcp_proxy import FaultProxy
from tests.test_imap_source import evidence_message

SIZES = (1, 50, 500)
PASSES = 5
TARGET_SECONDS_500 = 10.0
TARGET_ROUND_TRIPS = 1.0


@dataclass(frozen=True)
class Figures:
    mailboxes: int
    first_pass_seconds: float
    pass_seconds: float
    round_trips_per_mailbox: float


def _settings(folder: Path, users: list[MailUser], port: int) -> Settings:
    data = {
        "database": {"url": f"sqlite:///{folder / 'acuse.db'}"},
        "archive": {"path": str(folder / "archive")},
        "projects": [
            {
                "code": f"P{number:04d}",
                "name": f"Project {number}",
                "mailbox": {
                    "host": "127.0.0.1",
                    "port": port,
                    "security": "plain",
                    "username": user.name,
                    "password_file": str(user.password_file),
                    "timeout": "30s",
                },
            }
            for number, user in enumerate(users)
        ],
    }
    return common.settings_from_mapping(data, folder)


def measure(server: DovecotServer, users: list[MailUser]) -> Figures:
    with (
        tempfile.TemporaryDirectory(prefix="acuse-bench-") as folder,
        FaultProxy(server.imap_port) as proxy,
    ):
        settings = _settings(Path(folder), users, proxy.port)
        projects = project_views(settings)
        connections = MailboxConnections()
        with common.open_bench_database(settings.database_url) as database:
            poller = MailboxPoller(settings, database, Archive(settings.archive_path), connections)

            def one_pass() -> int:
                return sum(poller.poll_once(project).counts.stored for project in projects)

            first_seconds, stored = common.timed(one_pass)
            if stored != len(users):
                message = f"the first pass stored {stored} messages, expected {len(users)}"
                raise RuntimeError(message)

            before = proxy.boundaries
            durations = []
            for _ in range(PASSES):
                started = time.perf_counter()
                one_pass()
                durations.append(time.perf_counter() - started)
            round_trips = (proxy.boundaries - before) / (PASSES * len(users))
            connections.close_all()
    return Figures(len(users), first_seconds, statistics.median(durations), round_trips)


def run(sizes: list[int]) -> list[Figures]:
    figures = []
    with running_dovecot() as server:
        users = [server.create_user() for _ in range(max(sizes))]
        for user in users:
            server.append(user, "INBOX", [evidence_message(1)])
        for size in sizes:
            figures.append(measure(server, users[:size]))
            print(_row(figures[-1]), flush=True)
    return figures


def _row(figures: Figures) -> str:
    round_trips_met = figures.round_trips_per_mailbox <= TARGET_ROUND_TRIPS
    target = ""
    if figures.mailboxes == max(SIZES):
        met = figures.pass_seconds < TARGET_SECONDS_500
        target = f"< {TARGET_SECONDS_500:.0f} s ({common.verdict(met)})"
    per_mailbox = figures.pass_seconds * 1000 / figures.mailboxes
    return (
        f"| {figures.mailboxes} | {figures.round_trips_per_mailbox:.2f} "
        f"| {TARGET_ROUND_TRIPS:.0f} ({common.verdict(round_trips_met)}) "
        f"| {figures.pass_seconds * 1000:,.0f} ms | {per_mailbox:.1f} ms | {target} "
        f"| {figures.first_pass_seconds:,.1f} s |"
    )


def report(figures: list[Figures]) -> str:
    lines = [
        common.section_heading("Idle poll"),
        "",
        *common.environment_lines(),
        f"- Method: `benchmarks/idle_poll.py`; one Dovecot with N users, one message each, "
        f"polled once (the first pass), then the median of {PASSES} idle passes over kept "
        "connections, through a counting TCP proxy; each pass also records mailbox health.",
        "",
        "| mailboxes | round trips per mailbox | target | idle pass | per mailbox | target "
        "| first pass (login, examine, fetch) |",
        "|---|---|---|---|---|---|---|",
        *(_row(item) for item in figures),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="mailbox counts (default 1 50 500)")
    arguments = parser.parse_args()
    sizes = arguments.sizes or [common.scaled(size) for size in SIZES]
    common.record("idle-poll", report(run(sizes)))


if __name__ == "__main__":
    main()
