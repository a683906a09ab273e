"""The rules every daemon job runs by: its trigger, misfire grace, time limit and backoff.

A job is described by a JobSpec. ``job_options`` turns it into APScheduler 3 options with
``coalesce`` (runs missed during a pause collapse into one), ``max_instances=1`` (a slow run is
never joined by a second one) and a misfire grace as long as the interval, because APScheduler's
default of one second would drop the one catch-up run after the process was paused.

JobRunner wraps every run: it skips turns while the job backs off after failures, registers the
run with RunningJobs (which aborts it at its time limit), and logs each error with the project
and mailbox. The clock is injected so that the rules can be tested without sleeping.
"""

import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import DBAPIError

from config.crontab import crontab_trigger
from config.database import utcnow
from config.errors import AcuseError

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
JOB_EXECUTOR = "jobs"
DEFAULT_MAX_BACKOFF = timedelta(hours=1)
CRON_MISFIRE_GRACE = timedelta(hours=1)
# A run still going at this multiple of its time limit, after its abort, counts as hung.
HUNG_AFTER_TIMEOUTS = 2


def interval_trigger(every: timedelta, timezone: ZoneInfo) -> IntervalTrigger:
    """Return a trigger that fires every ``every``, counted from when the job is added."""
    return IntervalTrigger(seconds=every.total_seconds(), timezone=timezone)


def cron_trigger(expression: str, timezone: ZoneInfo) -> CronTrigger:
    """Return a trigger for a five-field crontab expression, in wall-clock time of ``timezone``.

    Weekday numbers follow crontab (0 and 7 are Sunday), not APScheduler 3 (0 is Monday).
    """
    return crontab_trigger(expression, timezone)


def misfire_grace(trigger: BaseTrigger) -> timedelta:
    """Return how late a run may start and still run: one interval, or an hour for cron."""
    if isinstance(trigger, IntervalTrigger):
        interval: timedelta = trigger.interval
        return interval
    return CRON_MISFIRE_GRACE


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job of the daemon.

    ``func`` receives the JobRun of each run, to register an abort hook and to check whether it
    should stop early. ``fingerprint`` changes whenever the settings the job depends on
    change, so a reload replaces exactly the jobs whose settings changed. ``retry_base`` is the
    first delay after a failure; later failures double it, up to ``max_backoff``.
    """

    id: str
    func: Callable[["JobRun"], None]
    trigger: BaseTrigger
    fingerprint: str
    timeout: timedelta
    retry_base: timedelta
    project: str | None = None
    mailbox: str | None = None
    max_backoff: timedelta = DEFAULT_MAX_BACKOFF
    run_at_start: bool = True

    @property
    def schedule(self) -> str:
        """The trigger's kind, timing and time zone; a reload reschedules a job when it changes."""
        return f"{self.trigger} {getattr(self.trigger, 'timezone', '')} {self.run_at_start}"

    def log_fields(self) -> dict[str, Any]:
        """Return the identifiers that every log line about this job carries."""
        fields: dict[str, Any] = {"job": self.id}
        if self.project is not None:
            fields["project"] = self.project
        if self.mailbox is not None:
            fields["mailbox"] = self.mailbox
        return fields


def job_options(spec: JobSpec, runner: "JobRunner", now: datetime) -> dict[str, Any]:
    """Return the keyword arguments of ``add_job`` for ``spec``, run through ``runner``."""
    options: dict[str, Any] = {
        "func": runner.run,
        "args": (spec,),
        "id": spec.id,
        "name": spec.id,
        "trigger": spec.trigger,
        "executor": JOB_EXECUTOR,
        "coalesce": True,
        "max_instances": 1,
        "misfire_grace_time": int(misfire_grace(spec.trigger).total_seconds()),
        "replace_existing": True,
    }
    if spec.run_at_start:
        options["next_run_time"] = now
    return options


@dataclass
class Backoff:
    """Exponential backoff over a job's turns while it keeps failing.

    After the nth failure in a row the job waits ``base * 2**(n-1)``, at most ``maximum``.
    Turns that come earlier are skipped. The delay counts from the start of the failed run,
    and a turn up to half a base early is allowed, so a failure of a job whose interval equals
    ``base`` retries on its very next turn.
    """

    base: timedelta
    maximum: timedelta = DEFAULT_MAX_BACKOFF
    failures: int = 0
    not_before: datetime | None = None

    def delay(self, failures: int) -> timedelta:
        """Return the wait after ``failures`` failures in a row."""
        if failures <= 0:
            return timedelta(0)
        ceiling = max(self.maximum, self.base)
        # Past 2**20 the product exceeds any sensible ceiling; stop doubling there.
        doubled: timedelta = self.base * 2 ** min(failures - 1, 20)
        return min(doubled, ceiling)

    def record_failure(self, started_at: datetime) -> timedelta:
        """Count a failed run that started at ``started_at``; return the wait before the next."""
        self.failures += 1
        wait = self.delay(self.failures)
        self.not_before = started_at + wait
        return wait

    def record_success(self) -> None:
        """End the streak of failures."""
        self.failures = 0
        self.not_before = None

    def allows(self, now: datetime) -> bool:
        """Return whether a turn at ``now`` may run."""
        if self.not_before is None:
            return True
        return now + self.base / 2 >= self.not_before


class JobAborted(AcuseError):
    """A job ran past its time limit, or the daemon is stopping, and its work was cut short."""


@dataclass
class JobRun:
    """One run of a job: its deadline, its abort hooks and the daemon's stop signal."""

    spec: JobSpec
    started_at: datetime
    stop: threading.Event
    aborted_at: datetime | None = None
    abort_reason: str | None = None
    _abort_hooks: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def deadline(self) -> datetime:
        return self.started_at + self.spec.timeout

    def on_abort(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` from another thread when this run is aborted, to close a socket."""
        with self._lock:
            self._abort_hooks.append(hook)
            aborted = self.aborted_at is not None
        if aborted:
            hook()

    def should_continue(self) -> bool:
        """Return whether the run may start another unit of work (a batch, a file)."""
        return self.aborted_at is None and not self.stop.is_set()

    def abort(self, now: datetime, reason: str) -> None:
        """Cut the run short: record why and call its abort hooks once."""
        with self._lock:
            if self.aborted_at is not None:
                return
            self.aborted_at = now
            self.abort_reason = reason
            hooks = list(self._abort_hooks)
        for hook in hooks:
            try:
                hook()
            except Exception:
                log.exception("abort hook failed", extra=self.spec.log_fields())


class RunningJobs:
    """The runs in progress, so that overdue ones are aborted and hung ones are noticed."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._runs: dict[int, JobRun] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    @contextmanager
    def track(self, spec: JobSpec, now: datetime) -> Iterator[JobRun]:
        """Register a run for the duration of the block."""
        run = JobRun(spec, now, self._stop)
        with self._lock:
            self._runs[id(run)] = run
        try:
            yield run
        finally:
            with self._changed:
                del self._runs[id(run)]
                self._changed.notify_all()

    def running(self) -> list[JobRun]:
        """Return the runs in progress, oldest first."""
        with self._lock:
            return sorted(self._runs.values(), key=lambda run: run.started_at)

    def enforce_deadlines(self, now: datetime) -> list[JobRun]:
        """Abort every run past its deadline; return the runs that count as hung.

        A run is hung when it is still going at HUNG_AFTER_TIMEOUTS times its time limit,
        which means its abort hooks could not make it stop.
        """
        hung: list[JobRun] = []
        for run in self.running():
            if now < run.deadline:
                continue
            if run.aborted_at is None:
                log.error(
                    "job exceeded its time limit and is aborted",
                    extra={**run.spec.log_fields(), "timeout_s": run.spec.timeout.total_seconds()},
                )
                run.abort(now, "timeout")
            if now >= run.started_at + run.spec.timeout * HUNG_AFTER_TIMEOUTS:
                hung.append(run)
        return hung

    def abort_all(self, now: datetime, reason: str) -> None:
        """Abort every run in progress."""
        for run in self.running():
            run.abort(now, reason)

    def wait_until_idle(self, timeout: timedelta) -> bool:
        """Wait up to ``timeout`` for every run to finish; return whether they all did."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._runs, timeout.total_seconds())


@dataclass(frozen=True)
class JobOutcome:
    """The end of one run: ``error`` is None on success; ``skipped`` marks a held-back turn."""

    spec: JobSpec
    started_at: datetime
    finished_at: datetime
    error: str | None = None
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped


class JobRunner:
    """Runs jobs with backoff, time limits and error logging; APScheduler calls ``run``."""

    def __init__(
        self,
        running: RunningJobs,
        clock: Clock = utcnow,
        on_outcome: Callable[[JobOutcome], None] | None = None,
    ) -> None:
        self.running = running
        self._clock = clock
        self._on_outcome = on_outcome
        self._backoffs: dict[str, Backoff] = {}
        self._lock = threading.Lock()
        # Worker threads start with empty context variables; each run gets a copy of the
        # creator's, so messages use the locale that the command line activated.
        self._context = contextvars.copy_context()

    def backoff(self, spec: JobSpec) -> Backoff:
        """Return the backoff state of ``spec``'s job; a changed retry base starts a new one."""
        with self._lock:
            current = self._backoffs.get(spec.id)
            if current is None or current.base != spec.retry_base:
                current = Backoff(spec.retry_base, spec.max_backoff)
                self._backoffs[spec.id] = current
            return current

    def forget(self, job_id: str) -> None:
        """Drop the backoff state of a removed job."""
        with self._lock:
            self._backoffs.pop(job_id, None)

    def run(self, spec: JobSpec) -> JobOutcome:
        """Run ``spec`` once unless it is backing off; log and return errors instead of raising."""
        return self._context.copy().run(self._run, spec)

    def _run(self, spec: JobSpec) -> JobOutcome:
        started = self._clock()
        backoff = self.backoff(spec)
        if not backoff.allows(started):
            log.debug(
                "job turn skipped while backing off",
                extra={**spec.log_fields(), "not_before": backoff.not_before},
            )
            return self._finish(JobOutcome(spec, started, started, skipped=True))

        error = self._run_tracked(spec, started)
        if error is None:
            if backoff.failures:
                log.info(
                    "job recovered",
                    extra={**spec.log_fields(), "failures": backoff.failures},
                )
            backoff.record_success()
        else:
            wait = backoff.record_failure(started)
            log.warning(
                "job failed; retrying later",
                extra={
                    **spec.log_fields(),
                    "error": error,
                    "consecutive_failures": backoff.failures,
                    "retry_in_s": wait.total_seconds(),
                },
            )
        return self._finish(JobOutcome(spec, started, self._clock(), error=error))

    def _run_tracked(self, spec: JobSpec, started: datetime) -> str | None:
        """Run the job's function; return the error message, or None when it succeeded."""
        with self.running.track(spec, started) as run:
            try:
                spec.func(run)
            except AcuseError as exc:
                return _aborted_message(run) or str(exc)
            except DBAPIError as exc:
                # The driver's message only: SQLAlchemy's text adds the statement and its
                # parameters, which the service status must not show.
                log.exception("job failed on a database error", extra=spec.log_fields())
                return f"{type(exc.orig).__name__}: {exc.orig}".strip()
            except Exception as exc:
                log.exception("job raised an unexpected error", extra=spec.log_fields())
                return f"{type(exc).__name__}: {exc}"
            if run.aborted_at is not None:
                return _aborted_message(run)
        return None

    def _finish(self, outcome: JobOutcome) -> JobOutcome:
        if self._on_outcome is not None:
            try:
                self._on_outcome(outcome)
            except Exception:
                log.exception("job outcome handler failed", extra=outcome.spec.log_fields())
        return outcome


def _aborted_message(run: JobRun) -> str | None:
    if run.abort_reason == "timeout":
        return f"the job was aborted after its time limit of {run.spec.timeout}"
    if run.abort_reason is not None:
        return f"the job was aborted: {run.abort_reason}"
    return None
