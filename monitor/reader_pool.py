"""A pool of reader worker processes, reused across messages, each message under ceilings.

Parsing MIME and PDF is where hostile input does its harm, so the ingest pipeline never parses
in its own process. A ``ReaderPool`` starts ``[limits] workers`` processes
(``python -m monitor.read_worker``) once and reuses them for every message, so the import and
start-up cost is paid once per pool, not per message. The worker enforces the CPU-time and
memory ceilings itself (see ``monitor.read_worker``). The pool adds the wall-time one, so a
worker that sends nothing for ``wall_seconds`` (stuck in C code that never returns to Python,
or waiting on a lookup) is killed and replaced. A worker that exits or runs out of memory is
replaced too. Each such message comes back quarantined with the limit or the exit status named.
"""

import atexit
import contextlib
import hashlib
import logging
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from threading import Lock
from typing import IO, Any, Protocol

from config.provider_settings import ProviderProfile, ReadingLimits
from monitor.limits import Limit
from monitor.mime import (
    addresses_in,
    decode_header_text,
    parse_header_date,
    strip_angle_brackets,
)
from monitor.outcomes import MessageClass
from monitor.reading_results import MessageReading, QuarantineCode, unreadable_reading
from monitor.trust_roots import signature_trust_for
from monitor.worker_frames import EOFFrame, read_frame, write_frame

log = logging.getLogger(__name__)


class MessageReader(Protocol):
    """Something that reads raw messages into readings: the worker pool, or the same in-process."""

    def start(self) -> None:
        """Get ready to read, so that the first ``read_many`` does not wait for it."""
        ...

    def read_many(
        self, messages: Sequence[tuple[str, bytes]], profile: ProviderProfile
    ) -> dict[str, MessageReading]:
        """Read each ``(key, raw)`` with ``profile``; return the readings by key."""
        ...


@dataclass
class _Task:
    key: str
    raw: bytes


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    profiles: set[str] = field(default_factory=set)
    task: _Task | None = None
    deadline: float = 0.0

    @property
    def stdin(self) -> IO[bytes]:
        assert self.process.stdin is not None
        return self.process.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout


class ReaderPool:
    """Worker processes that read messages under the ceilings of ``limits``.

    Thread-safe: concurrent calls of ``read_many`` take turns.
    """

    def __init__(self, limits: ReadingLimits) -> None:
        self.limits = limits
        self._workers: list[_Worker] = []
        self._lock = Lock()
        self._closed = False

    def read_many(
        self, messages: Sequence[tuple[str, bytes]], profile: ProviderProfile
    ) -> dict[str, MessageReading]:
        """Read each ``(key, raw)`` in a worker; return the readings by key.

        A message that hits a ceiling, or whose worker dies, comes back quarantined with
        the limit or the exit status named.
        """
        if not messages:
            return {}
        signature_trust_for(profile)  # a broken trust root fails here, not per message
        with self._lock:
            if self._closed:
                message = "the reader pool is closed"
                raise RuntimeError(message)
            self._ensure_workers()
            return _Dispatch(self, profile, messages).run()

    def start(self) -> None:
        """Start the worker processes now, so their start-up overlaps the caller's own work."""
        with self._lock:
            if not self._closed:
                self._ensure_workers()

    def close(self) -> None:
        """Stop every worker: close its input and wait a moment, then kill it."""
        with self._lock:
            self._closed = True
            for worker in self._workers:
                _stop(worker)
            self._workers = []

    def _ensure_workers(self) -> None:
        while len(self._workers) < self.limits.workers:
            self._workers.append(self._start_worker())

    def _start_worker(self) -> _Worker:
        command = [sys.executable, "-m", "monitor.read_worker", self.limits.model_dump_json()]
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True
        )
        log.debug("reader worker started", extra={"pid": process.pid})
        return _Worker(process)

    def replace(self, worker: _Worker) -> _Worker:
        """Kill ``worker`` and put a fresh one in its place."""
        _stop(worker, grace=0.0)
        fresh = self._start_worker()
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    @property
    def workers(self) -> list[_Worker]:
        return self._workers


class _Dispatch:
    """One ``read_many`` call: hands tasks to idle workers and collects their replies."""

    def __init__(
        self, pool: ReaderPool, profile: ProviderProfile, messages: Sequence[tuple[str, bytes]]
    ) -> None:
        self.pool = pool
        self.profile = profile
        self.profile_key = hashlib.sha256(profile.model_dump_json().encode()).hexdigest()
        self.pending = deque(_Task(key, raw) for key, raw in messages)
        self.results: dict[str, MessageReading] = {}

    def run(self) -> dict[str, MessageReading]:
        while self.pending or self._busy():
            self._hand_out()
            self._collect()
        return self.results

    def _busy(self) -> list[_Worker]:
        return [worker for worker in self.pool.workers if worker.task is not None]

    def _hand_out(self) -> None:
        for idle in [worker for worker in self.pool.workers if worker.task is None]:
            if not self.pending:
                return
            # A worker that died while idle is replaced before it gets a task.
            alive = idle if idle.process.poll() is None else self.pool.replace(idle)
            self._send(alive, self.pending.popleft())

    def _send(self, worker: _Worker, task: _Task) -> None:
        profile = None if self.profile_key in worker.profiles else self.profile
        worker.task = task
        worker.deadline = time.monotonic() + self.pool.limits.wall_seconds
        try:
            write_frame(worker.stdin, (self.profile_key, profile, task.raw))
        except OSError:
            # The worker gave up while receiving the message (it ran out of memory, say).
            # Its reply, or else its exit status, is the reason.
            self._answer(worker)
            return
        worker.profiles.add(self.profile_key)

    def _collect(self) -> None:
        busy = self._busy()
        if not busy:
            return
        timeout = max(0.0, min(worker.deadline for worker in busy) - time.monotonic())
        with selectors.DefaultSelector() as selector:
            for worker in busy:
                selector.register(worker.stdout, selectors.EVENT_READ, worker)
            ready = selector.select(timeout)
        for key, _events in ready:
            self._answer(key.data)
        now = time.monotonic()
        for worker in self._busy():
            if worker.deadline <= now:
                self._time_out(worker)

    def _answer(self, worker: _Worker) -> None:
        task = worker.task
        assert task is not None
        try:
            reply = read_frame(worker.stdout)
        except EOFFrame:
            reply = None
        worker.task = None
        if reply is None:
            self.results[task.key] = self._crashed(worker, task)
            self.pool.replace(worker)
            return

        status, payload = reply
        self.results[task.key] = self._reading_from(status, payload, task)
        if status == "limit" and payload[0] == Limit.MEMORY_BYTES.value:
            # The worker exits after MemoryError, since its heap may be in a bad state.
            self.pool.replace(worker)

    def _reading_from(self, status: str, payload: Any, task: _Task) -> MessageReading:
        if status == "ok":
            reading: MessageReading = payload
            return reading
        if status == "limit":
            limit, detail = payload
            log.warning("message past a reader limit", extra={"key": task.key, "limit": limit})
            code = QuarantineCode.LIMIT_EXCEEDED
            return _with_headers(code, f"{limit}: {detail}", task.raw, self.pool.limits)
        log.error("reader failed on a message", extra={"key": task.key, "error": payload})
        return _with_headers(QuarantineCode.READER_ERROR, str(payload), task.raw, self.pool.limits)

    def _crashed(self, worker: _Worker, task: _Task) -> MessageReading:
        status = worker.process.wait()
        limits = self.pool.limits
        if status in (-signal.SIGXCPU, -signal.SIGKILL):
            detail = f"the reader used more than {limits.cpu_seconds} s of CPU time"
            return _with_headers(
                QuarantineCode.LIMIT_EXCEEDED,
                f"{Limit.CPU_SECONDS.value}: {detail}",
                task.raw,
                limits,
            )
        detail = f"the reader process exited with status {status}"
        log.error("reader worker died", extra={"pid": worker.process.pid, "status": status})
        return _with_headers(QuarantineCode.READER_CRASHED, detail, task.raw, limits)

    def _time_out(self, worker: _Worker) -> None:
        task = worker.task
        assert task is not None
        limits = self.pool.limits
        log.warning(
            "reader worker timed out, so it is replaced",
            extra={"pid": worker.process.pid, "wall_seconds": limits.wall_seconds},
        )
        detail = f"{Limit.WALL_SECONDS.value}: no answer within {limits.wall_seconds:g} s"
        self.results[task.key] = _with_headers(
            QuarantineCode.LIMIT_EXCEEDED, detail, task.raw, limits
        )
        worker.task = None
        self.pool.replace(worker)


def _with_headers(
    code: QuarantineCode, detail: str, raw: bytes, limits: ReadingLimits
) -> MessageReading:
    """Build a quarantine reading that keeps From, Subject, Date and Message-ID when they parse.

    Only the header section is parsed, and only when it is within ``max_header_bytes``, so
    the parent process never walks a hostile body.
    """
    reading = unreadable_reading(code, detail)
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    if end < 0 or end > limits.max_header_bytes:
        return reading
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:end])
        from_addresses = addresses_in(headers.get_all("From", []))
        return MessageReading(
            classification=MessageClass.QUARANTINED,
            header_message_id=strip_angle_brackets(headers.get("Message-ID")),
            from_address=from_addresses[0] if from_addresses else None,
            subject=decode_header_text(headers.get("Subject")),
            date=parse_header_date(headers.get("Date")),
            evidence=(),
            quarantine_code=code,
            quarantine_detail=detail,
        )
    except Exception:  # the headers are only a courtesy for the quarantine list
        log.debug("headers of a quarantined message could not be read", exc_info=True)
        return reading


def _stop(worker: _Worker, grace: float = 2.0) -> None:
    """Close the worker's input so it exits, wait up to ``grace`` seconds, then kill it."""
    process = worker.process
    with contextlib.suppress(OSError):
        worker.stdin.close()
    if grace and process.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    if process.poll() is None:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


_pools: dict[ReadingLimits, ReaderPool] = {}
_pools_lock = Lock()


def shared_reader_pool(limits: ReadingLimits) -> ReaderPool:
    """Return the process-wide pool for ``limits``, started on first use and closed at exit."""
    with _pools_lock:
        pool = _pools.get(limits)
        if pool is None:
            pool = ReaderPool(limits)
            _pools[limits] = pool
        return pool


@atexit.register
def _close_pools() -> None:
    for pool in list(_pools.values()):
        pool.close()
