"""Code shared by the benchmarks: scale, machine and version facts, RESULTS.md, databases.

Every benchmark prints a Markdown section and replaces its own section of benchmarks/RESULTS.md,
so the file always contains the latest run of each benchmark next to the machine it ran on.
``BENCH_SCALE`` (a factor, default 1) shrinks every size for a quick run; a section written at a
scale below 1 says so in its heading.
"""

import os
import platform
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.database import Database, open_database
from config.settings import ProjectView, Settings, project_view, settings_from_mapping

__all__ = ["settings_from_mapping"]

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
POSTGRES_ADMIN_URL = os.environ.get(
    "ACUSE_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
KEY_PACKAGES = ("imapclient", "mail-parser", "pypdf", "sqlalchemy", "sqlmodel", "psycopg")
RESULTS_INTRO = """# Benchmark results

Each section below is the latest run of one benchmark, written by the script named in it
(`make bench` runs them all). Figures come from one run on the machine named in the section;
on a machine shared with other work they vary by tens of percent between runs.
"""


def scale() -> float:
    """Return the factor from ``BENCH_SCALE`` that every size is multiplied by (default 1)."""
    text = os.environ.get("BENCH_SCALE", "1")
    try:
        factor = float(text)
    except ValueError:
        message = f"BENCH_SCALE must be a number such as 0.01, not {text!r}"
        raise SystemExit(message) from None
    if not 0 < factor <= 1:
        message = f"BENCH_SCALE must be above 0 and at most 1, not {text!r}"
        raise SystemExit(message)
    return factor


def scaled(size: int, minimum: int = 1) -> int:
    """``size`` multiplied by the scale, at least ``minimum``."""
    return max(minimum, round(size * scale()))


def machine() -> str:
    """CPU model, cores, RAM and kernel of this machine."""
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


def _command_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return done.stdout.strip() or "unknown"


def postgres_version() -> str:
    """The version the benchmark PostgreSQL server reports, or why there is none."""
    try:
        url = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, connect_timeout=5) as connection:
            row = connection.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "unknown"
    except psycopg.Error as exc:
        return f"not reachable ({type(exc).__name__})"


def versions() -> str:
    """Python, the key libraries, Dovecot, SQLite and PostgreSQL versions."""
    listed = []
    for name in KEY_PACKAGES:
        try:
            listed.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            listed.append(f"{name} not installed")
    dovecot = _command_version(["dovecot", "--version"])
    return (
        f"Python {platform.python_version()}, {', '.join(listed)}, Dovecot {dovecot}, "
        f"SQLite {sqlite3.sqlite_version}, PostgreSQL {postgres_version()}"
    )


def section_heading(title: str) -> str:
    """Return the heading of a RESULTS.md section, with the time, and the scale when below 1."""
    factor = scale()
    note = "" if factor == 1 else f" (BENCH_SCALE={factor:g}: sizes reduced)"
    return f"## {title}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC{note}"


def environment_lines() -> list[str]:
    """Return the machine and versions lines that every section starts with."""
    return [f"- Machine: {machine()}", f"- Versions: {versions()}"]


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def record(name: str, text: str, *, echo: bool = True) -> None:
    """Print ``text`` (unless ``echo`` is false) and put it in RESULTS.md as section ``name``.

    The section replaces the earlier one of that name.
    """
    if echo:
        print(text)
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else RESULTS_INTRO
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _match: block, current)
    else:
        updated = current.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(updated, encoding="utf-8")


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``action``; return the seconds it took and its result."""
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def median_seconds(action: Callable[[], object], runs: int) -> float:
    """Return the median wall time of ``runs`` calls of ``action``."""
    return statistics.median(timed(action)[0] for _ in range(runs))


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def benchmark_settings(folder: Path, database_url: str, **project: Any) -> Settings:
    """Settings with one project ``BENCH`` over ``database_url``, rooted in ``folder``."""
    data: dict[str, Any] = {
        "database": {"url": database_url},
        "archive": {"path": str(folder / "archive")},
        "projects": [{"code": "BENCH", "name": "Benchmark", **project}],
    }
    return settings_from_mapping(data, folder)


def bench_project(settings: Settings) -> ProjectView:
    return project_view(settings, "BENCH")


@contextmanager
def sqlite_url(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder / 'acuse.db'}"


@contextmanager
def postgres_url() -> Iterator[str]:
    """Create a uniquely named PostgreSQL database for one run and drop it afterwards."""
    name = f"acuse_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def open_bench_database(url: str) -> Iterator[Database]:
    database = open_database(url)
    try:
        yield database
    finally:
        database.dispose()


@dataclass(frozen=True)
class ChildRun:
    """A finished child process: wall time, output and memory."""

    seconds: float
    stdout: str
    stderr: str
    returncode: int
    peak_rss_mb: float  # the largest single process of the tree (wait4's ru_maxrss)
    peak_tree_rss_mb: float  # the largest sum over the process and its descendants, sampled


def _tree_rss_kb(root: int) -> int:
    """Return the summed VmRSS of ``root`` and every descendant, read from /proc, in KiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry.name)
        children.setdefault(int(fields.get("PPid", "0").strip() or 0), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += rss.get(pid, 0)
        pending.extend(children.get(pid, []))
    return total


def run_child(command: list[str], sample_every: float = 0.25) -> ChildRun:
    """Run ``command`` to its end, sampling the RSS of its process tree every ``sample_every`` s."""
    started = time.perf_counter()
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        process = subprocess.Popen(command, stdout=out, stderr=err)
        tree_peak = 0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            tree_peak = max(tree_peak, _tree_rss_kb(process.pid))
            time.sleep(sample_every)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    # ru_maxrss is in KiB on Linux.
    peak = usage.ru_maxrss / 1024
    return ChildRun(seconds, stdout, stderr, process.returncode, peak, max(tree_peak / 1024, peak))
