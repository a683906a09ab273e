"""Near-real-time ingest with IMAP IDLE, for mailboxes configured with ``idle = true``.

An IdleWatcher is a thread that keeps one connection open: it polls the folder, waits in IDLE
until the server announces a message or ``idle_renew`` passes, and polls again. Renewing
IDLE well before the 30 minutes after which RFC 2177 lets a server drop it also proves that
the connection is alive: a dead one fails the DONE within the IMAP timeout, and the watcher
reconnects with exponential backoff. When the server lacks IDLE the watcher ends and the
mailbox's regular poll job takes over.
"""

import contextvars
import enum
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from acuse.scheduling import Backoff, JobOutcome, JobRun, JobSpec, interval_trigger
from config.database import utcnow
from config.errors import AcuseError
from config.settings import ProjectView, Settings
from monitor.imap_source import ImapSource

if TYPE_CHECKING:
    from acuse.jobs import DaemonServices

log = logging.getLogger(__name__)

MAX_RETRY_BASE = timedelta(seconds=30)
STOP_TIMEOUT = timedelta(seconds=10)


class WatchState(enum.Enum):
    """The state of an IDLE watcher."""

    STARTING = "starting"
    IDLING = "idling"
    RETRYING = "retrying"
    UNSUPPORTED = "unsupported"
    STOPPED = "stopped"


class IdleWatcher(threading.Thread):
    """Keeps one project's mailbox folder read through IMAP IDLE."""

    def __init__(
        self, services: "DaemonServices", settings: Settings, project: ProjectView, spec: JobSpec
    ) -> None:
        super().__init__(name=f"idle-{project.code}", daemon=True)
        mailbox = project.settings.mailbox
        assert mailbox is not None
        self.services = services
        self.settings = settings
        self.project = project
        self.spec = spec
        self.state = WatchState.STARTING
        self._renew = mailbox.idle_renew
        self._stop_event = threading.Event()
        # A new thread starts with empty context variables; keep the creator's locale.
        self._context = contextvars.copy_context()
        self._backoff = Backoff(min(project.poll_interval, MAX_RETRY_BASE), spec.max_backoff)

    @property
    def owns_mailbox(self) -> bool:
        """Whether this watcher, not the poll job, reads the mailbox now."""
        return self.state in {WatchState.STARTING, WatchState.IDLING, WatchState.RETRYING}

    def stop(self) -> None:
        """Ask the watcher to end IDLE, log out and finish."""
        self._stop_event.set()

    def run(self) -> None:
        self._context.run(self._watch)

    def _watch(self) -> None:
        log.info("IDLE watcher started", extra=self.spec.log_fields())
        while not self._stopping():
            started = utcnow()
            try:
                self._session()
            except AcuseError as exc:
                self._retry_later(started, str(exc))
            except Exception as exc:
                log.exception(
                    "IDLE watcher raised an unexpected error", extra=self.spec.log_fields()
                )
                self._retry_later(started, f"{type(exc).__name__}: {exc}")
            if self.state is WatchState.UNSUPPORTED:
                return
        self.state = WatchState.STOPPED
        log.info("IDLE watcher stopped", extra=self.spec.log_fields())

    def _stopping(self) -> bool:
        return self._stop_event.is_set() or self.services.stop.is_set()

    def _session(self) -> None:
        """Poll, then alternate IDLE and polls on one connection until stopped or failing."""
        poller = self.services.poller(self.settings)
        try:
            source = poller.open_source(self.project)
        except AcuseError as exc:
            poller.record_failure(self.project, self.spec.mailbox or "", str(exc))
            self.services.report(JobOutcome(self.spec, utcnow(), utcnow(), error=str(exc)))
            raise
        try:
            self._pass(source)
            if not source.supports_idle():
                self.state = WatchState.UNSUPPORTED
                log.warning(
                    "server lacks IDLE; polling the mailbox every poll interval instead",
                    extra={
                        **self.spec.log_fields(),
                        "poll_interval": str(self.project.poll_interval),
                    },
                )
                return
            if self.state is not WatchState.IDLING:
                log.info("IDLE connection open", extra=self.spec.log_fields())
            self.state = WatchState.IDLING
            self._backoff.record_success()
            while not self._stopping():
                source.idle_wait(self._renew, self._stop_event)
                if not self._stopping():
                    self._pass(source)
        finally:
            source.close()

    def _pass(self, source: ImapSource) -> None:
        """Poll the open connection as one tracked run, with the job's time limit."""
        started = utcnow()
        error: str | None = None
        try:
            with (
                self.services.mailbox_lock(self.project.code),
                self.services.running.track(self.spec, started) as run,
            ):
                run.on_abort(source.abort)
                result = self.services.poller(self.settings).poll_connected(
                    self.project, source, should_continue=self._continue_with(run)
                )
            self.services.after_poll(self.project, result)
        except AcuseError as exc:
            error = str(exc)
            raise
        finally:
            self.services.report(JobOutcome(self.spec, started, utcnow(), error=error))

    def _continue_with(self, run: JobRun) -> Callable[[], bool]:
        folder = self.spec.mailbox or ""
        return lambda: (
            run.should_continue()
            and not self._stop_event.is_set()
            and self.services.holds_mailbox(self.project.code, folder)
        )

    def _retry_later(self, started: datetime, error: str) -> None:
        self.state = WatchState.RETRYING
        wait = self._backoff.record_failure(started)
        log.warning(
            "IDLE connection failed; reconnecting later",
            extra={
                **self.spec.log_fields(),
                "error": error,
                "consecutive_failures": self._backoff.failures,
                "retry_in_s": wait.total_seconds(),
            },
        )
        self._stop_event.wait(wait.total_seconds())


class IdleWatchers:
    """The IDLE watcher of each mailbox configured with ``idle = true``, by project code."""

    def __init__(self, services: "DaemonServices") -> None:
        self._services = services
        self._watchers: dict[str, IdleWatcher] = {}
        self._lock = threading.Lock()

    def ensure(self, settings: Settings, project: ProjectView, fingerprint: str) -> IdleWatcher:
        """Return the project's watcher, starting one when none runs for these settings."""
        with self._lock:
            current = self._watchers.get(project.code)
            if current is not None and current.spec.fingerprint == fingerprint:
                return current
            if current is not None:
                current.stop()
            watcher = IdleWatcher(
                self._services, settings, project, _idle_spec(project, fingerprint)
            )
            self._watchers[project.code] = watcher
            watcher.start()
            return watcher

    def stop(self, code: str) -> None:
        """Stop the watcher of project ``code``, if one runs."""
        with self._lock:
            watcher = self._watchers.pop(code, None)
        if watcher is not None:
            watcher.stop()

    def retain(self, fingerprints: dict[str, str]) -> None:
        """Stop the watchers of projects not in ``fingerprints`` or whose settings changed."""
        with self._lock:
            for code, watcher in list(self._watchers.items()):
                if fingerprints.get(code) != watcher.spec.fingerprint:
                    watcher.stop()
                    del self._watchers[code]

    def stop_all(self, timeout: timedelta = STOP_TIMEOUT) -> None:
        """Stop every watcher and wait up to ``timeout`` for each to log out."""
        with self._lock:
            watchers = list(self._watchers.values())
            self._watchers.clear()
        for watcher in watchers:
            watcher.stop()
        for watcher in watchers:
            watcher.join(timeout.total_seconds())


def _idle_spec(project: ProjectView, fingerprint: str) -> JobSpec:
    """Return the JobSpec that names and limits the watcher's passes; it is never scheduled."""
    return JobSpec(
        id=f"idle:{project.code}",
        func=lambda run: None,
        trigger=interval_trigger(project.poll_interval, project.timezone),
        fingerprint=fingerprint,
        timeout=project.job_timeout,
        retry_base=project.poll_interval,
        project=project.code,
        mailbox=project.settings.mailbox.folder if project.settings.mailbox else None,
    )
