"""``acuse run``: the daemon that polls every mailbox, imports send logs and reconciles on schedule.

Start-up loads the configuration, opens the database (Alembic brings the schema up to date)
and checks that the archive folder is writable. Only then does it tell systemd ``READY=1``.
APScheduler 3 runs the jobs in a thread pool, so a mailbox that hangs holds one thread and
never delays the others. A supervisor job on its own single-thread executor aborts runs past
their time limit and sends ``WATCHDOG=1``; it stops sending when a run stays hung after its
abort, or when the scheduler stops dispatching, so systemd restarts the process.

Signals: SIGTERM and SIGINT stop new runs, let running ones finish their current batch within
STOP_GRACE, abort what remains, and exit 0. Every batch commits with its cursor, so an
interrupted poll leaves nothing half-written. SIGHUP reloads the configuration: jobs of added
and removed projects are added and removed, a job whose trigger changed is rescheduled, and a
job whose other settings changed keeps its schedule. An invalid file is logged and the running
configuration stays.
"""

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import SQLAlchemyError

from acuse.checks import check_archive_writable
from acuse.instances import InstanceKeeper
from acuse.jobs import DaemonServices, JobBuilder, build_jobs
from acuse.labels import format_count
from acuse.metrics import DaemonMetrics
from acuse.scheduling import (
    JOB_EXECUTOR,
    Clock,
    JobOutcome,
    JobRunner,
    JobSpec,
    RunningJobs,
    job_options,
)
from acuse.status_line import StatusBoard
from acuse.systemd_notify import SystemdNotifier, watchdog_interval
from config.database import Database, open_database, utcnow
from config.errors import AcuseError
from config.i18n import _, ngettext
from config.settings import Settings, load_settings
from monitor.archive import Archive
from reconcile.alert_routing import alert_recipients, missing_smtp_warning

log = logging.getLogger(__name__)

SUPERVISOR_EXECUTOR = "supervisor"
SUPERVISOR_JOB = "supervisor"
MAX_SUPERVISOR_TICK = timedelta(seconds=10)
STOP_GRACE = timedelta(seconds=20)
ABORT_GRACE = timedelta(seconds=5)
MIN_WORKERS = 16
SIGNAL_CHECK_SECONDS = 0.5


@dataclass
class JobChanges:
    """Counts of the jobs that a start or reload added, rescheduled, updated, kept or removed."""

    added: int = 0
    rescheduled: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0


class Daemon:
    """One run of ``acuse run``: start, serve signals until a stop request, then stop cleanly."""

    def __init__(
        self,
        config_path: Path | None,
        notifier: SystemdNotifier | None = None,
        clock: Clock = utcnow,
        builders: list[JobBuilder] | None = None,
    ) -> None:
        self.config_path = config_path
        self.notifier = notifier or SystemdNotifier()
        self._clock = clock
        self._builders = builders
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wake = threading.Event()
        self._board = StatusBoard()
        self._jobs: dict[str, JobSpec] = {}
        self._hung_reported = False
        self._workers = MIN_WORKERS
        self.settings: Settings | None = None
        self.database: Database | None = None
        self.metrics: DaemonMetrics | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.services: DaemonServices | None = None
        self.runner: JobRunner | None = None

    def run(self) -> int:
        """Start, wait for signals, stop; return the exit code.

        Raises ConfigError for an invalid configuration and DatabaseError or ArchiveError
        when start-up checks fail, before anything is scheduled.
        """
        self._install_signal_handlers()
        _quiet_scheduler_logs()
        try:
            self.start()
        except AcuseError as exc:
            self.notifier.status(str(exc))
            raise
        try:
            self._serve_signals()
        finally:
            self.stop()
        return 0

    def start(self) -> None:
        """Check the configuration, database and archive, schedule the jobs and report READY."""
        settings = load_settings(self.config_path)
        database = open_database(settings.database_url)
        check_archive_writable(settings)
        self.settings = settings
        self.database = database
        instance = InstanceKeeper(database, settings)
        instance.register(self._clock())
        instance.renew(settings, self._clock())

        running = RunningJobs(self._stop)
        services = DaemonServices(
            database, Archive(settings.archive_path), running, self._stop, self._report, instance
        )
        self.services = services
        self.runner = JobRunner(running, self._clock, self._report)
        self._start_metrics(settings, database)

        specs = build_jobs(services, settings, self._builders)
        self.scheduler = self._new_scheduler(len(specs))
        self._apply_jobs(specs, settings)
        self._add_supervisor()
        self.scheduler.start()

        log.info(
            "daemon started",
            extra={
                "config": str(self.config_path),
                "projects": len(settings.projects),
                "jobs": len(specs),
                "pid": os.getpid(),
                "instance": instance.instance_id,
            },
        )
        _warn_missing_smtp(settings)
        self.notifier.ready(
            ngettext("Started with {count} job.", "Started with {count} jobs.", len(specs)).format(
                count=format_count(len(specs))
            )
        )

    def request_stop(self) -> None:
        """Ask the main loop to stop, as SIGTERM does."""
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        """Ask the main loop to reload the configuration, as SIGHUP does."""
        self._reload.set()
        self._wake.set()

    def reload(self) -> bool:
        """Load the configuration again and apply it; return whether it was applied."""
        assert self.settings is not None
        assert self.services is not None
        self.notifier.reloading()
        log.info("reloading configuration", extra={"config": str(self.config_path)})
        try:
            settings = load_settings(self.config_path)
            specs = build_jobs(self.services, settings, self._builders)
        except Exception as exc:
            # No reload failure may stop a running daemon. An AcuseError explains itself; any
            # other exception is a bug in a validator or a job builder, so its traceback is kept.
            expected = isinstance(exc, AcuseError)
            log.error(
                "configuration reload failed; the previous configuration stays in force",
                extra={"config": str(self.config_path), "error": _error_text(exc)},
                exc_info=not expected,
            )
            self.notifier.ready(self._board.summary())
            return False

        self._warn_restart_needed(self.settings, settings)
        _warn_missing_smtp(settings)
        changes = self._apply_jobs(specs, settings)
        log.info(
            "configuration reloaded",
            extra={
                "added": changes.added,
                "rescheduled": changes.rescheduled,
                "updated": changes.updated,
                "unchanged": changes.unchanged,
                "removed": changes.removed,
                "jobs": len(specs),
            },
        )
        self.notifier.ready(self._board.summary())
        return True

    def stop(self) -> None:
        """Stop the scheduler, let running jobs reach a safe point, then close everything."""
        self._stop.set()
        self.notifier.stopping(_("Stopping."))
        log.info("daemon stopping")
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        stragglers = self._finish_running_jobs()
        if self.services is not None and not stragglers:
            self.services.connections.close_all()
        self._retire_instance()
        if self.metrics is not None:
            self.metrics.close()
        if self.database is not None and not stragglers:
            self.database.dispose()
        log.info("daemon stopped", extra={"unfinished_jobs": stragglers})
        self.notifier.close()

    def _retire_instance(self) -> None:
        """Hand this instance's mailboxes to the others now instead of when the leases lapse."""
        if self.services is None or self.services.instance is None:
            return
        try:
            self.services.instance.retire()
        except SQLAlchemyError as exc:
            log.error(
                "leases not released at stop; other instances take them when they lapse",
                extra={"instance": self.services.instance.instance_id, "error": str(exc)},
            )

    def _serve_signals(self) -> None:
        while not self._stop.is_set():
            # The kernel may deliver a signal to any thread, and Python runs the handler only
            # when the main thread next executes bytecode; the timeout makes sure it does.
            self._wake.wait(SIGNAL_CHECK_SECONDS)
            self._wake.clear()
            if self._reload.is_set() and not self._stop.is_set():
                self._reload.clear()
                self.reload()

    def _install_signal_handlers(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal received", extra={"signal": signal.Signals(signum).name})
            self.request_stop()

        def on_reload(signum: int, _frame: FrameType | None) -> None:
            log.info("signal received", extra={"signal": signal.Signals(signum).name})
            self.request_reload()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)

    def _new_scheduler(self, job_count: int) -> BackgroundScheduler:
        # Each job uses at most one thread (max_instances=1), so a pool with room for every
        # job lets a hung mailbox block its own thread without delaying any other job.
        self._workers = max(MIN_WORKERS, 2 * job_count)
        return BackgroundScheduler(
            timezone=UTC,
            executors={
                JOB_EXECUTOR: ThreadPoolExecutor(self._workers),
                SUPERVISOR_EXECUTOR: ThreadPoolExecutor(1),
            },
        )

    def _apply_jobs(self, specs: list[JobSpec], settings: Settings) -> JobChanges:
        """Make the scheduled jobs match ``specs`` and count what changed.

        A job whose trigger changed is replaced and runs at once. A job whose settings changed
        but whose trigger did not gets its new arguments and keeps its next run time.
        """
        assert self.scheduler is not None
        assert self.runner is not None
        assert self.services is not None
        wanted = {spec.id: spec for spec in specs}
        removed = [job_id for job_id in self._jobs if job_id not in wanted]
        for job_id in removed:
            self.scheduler.remove_job(job_id)
            self.runner.forget(job_id)
            del self._jobs[job_id]

        changes = JobChanges(removed=len(removed))
        now = self._clock()
        for spec in specs:
            current = self._jobs.get(spec.id)
            if current is not None and current.fingerprint == spec.fingerprint:
                changes.unchanged += 1
                continue
            if current is not None and current.schedule == spec.schedule:
                changes.updated += 1
                self.scheduler.modify_job(spec.id, args=(spec,))
            else:
                if current is None:
                    changes.added += 1
                else:
                    changes.rescheduled += 1
                self.scheduler.add_job(**job_options(spec, self.runner, now))
            self._jobs[spec.id] = spec

        self.settings = settings
        self.services.idle_watchers.retain(_idle_fingerprints(specs, settings))
        self._board.retain(
            {(s.project, s.mailbox) for s in specs if s.project and s.mailbox is not None}
        )
        if len(specs) > self._workers:
            log.warning(
                "more jobs than worker threads; restart acuse to enlarge the pool",
                extra={"jobs": len(specs), "workers": self._workers},
            )
        return changes

    def _add_supervisor(self) -> None:
        assert self.scheduler is not None
        interval = watchdog_interval()
        tick = MAX_SUPERVISOR_TICK if interval is None else min(interval / 2, MAX_SUPERVISOR_TICK)
        self.scheduler.add_job(
            self._supervise,
            "interval",
            seconds=tick.total_seconds(),
            id=SUPERVISOR_JOB,
            executor=SUPERVISOR_EXECUTOR,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(tick.total_seconds())),
            next_run_time=self._clock(),
        )

    def _supervise(self) -> None:
        """Abort overdue runs; send WATCHDOG=1 unless a run stays hung after its abort."""
        assert self.runner is not None
        hung = self.runner.running.enforce_deadlines(self._clock())
        if hung:
            if not self._hung_reported:
                log.error(
                    "a job is hung after its abort; withholding the watchdog ping so that "
                    "systemd restarts acuse",
                    extra={**hung[0].spec.log_fields(), "started_at": hung[0].started_at},
                )
                self._hung_reported = True
            return
        self._hung_reported = False
        self.notifier.watchdog()

    def _report(self, outcome: JobOutcome) -> None:
        self._board.record(outcome)
        if self.metrics is not None:
            self.metrics.observe(outcome)
        if not outcome.skipped:
            self.notifier.status(self._board.summary())

    def _start_metrics(self, settings: Settings, database: Database) -> None:
        address = settings.metrics.address
        if address is None:
            return
        self.metrics = DaemonMetrics(self._current_settings, database)
        try:
            self.metrics.serve(*address)
        except OSError as exc:
            log.error(
                "metrics endpoint failed to start; running without it",
                extra={"listen": settings.metrics.listen, "error": str(exc)},
            )

    def _current_settings(self) -> Settings:
        assert self.settings is not None
        return self.settings

    def _finish_running_jobs(self) -> int:
        """Wait for running jobs, abort the rest, and return how many never finished."""
        if self.services is None:
            return 0
        self.services.idle_watchers.stop_all()
        running = self.services.running
        if running.wait_until_idle(STOP_GRACE):
            return 0
        log.warning(
            "jobs still running at stop; aborting them",
            extra={"jobs": [run.spec.id for run in running.running()]},
        )
        running.abort_all(self._clock(), _("the daemon is stopping"))
        if running.wait_until_idle(ABORT_GRACE):
            return 0
        unfinished = len(running.running())
        log.error("jobs did not stop after their abort", extra={"jobs": unfinished})
        return unfinished

    def _warn_restart_needed(self, old: Settings, new: Settings) -> None:
        if old.instances.id != new.instances.id:
            log.warning(
                "configuration key changed but applies only after a restart",
                extra={"key": "instances.id"},
            )
        for section in ("database", "archive", "metrics"):
            if getattr(old, section) != getattr(new, section):
                log.warning(
                    "configuration section changed but applies only after a restart",
                    extra={"section": section},
                )


def _warn_missing_smtp(settings: Settings) -> None:
    if missing_smtp_warning(settings) is not None:
        log.warning(
            "alerts have recipients but no [smtp] section; they stay in the outbox unsent "
            "until [smtp] is added",
            extra={"recipients": sorted(alert_recipients(settings))},
        )


def _error_text(exc: Exception) -> str:
    if isinstance(exc, AcuseError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _idle_fingerprints(specs: list[JobSpec], settings: Settings) -> dict[str, str]:
    idle_projects = {
        project.code
        for project in settings.projects
        if project.mailbox is not None and project.mailbox.idle
    }
    return {
        spec.project: spec.fingerprint
        for spec in specs
        if spec.id.startswith("poll:") and spec.project in idle_projects
    }


def _quiet_scheduler_logs() -> None:
    # APScheduler logs two INFO lines per run, and acuse logs one line per unit of work itself.
    # Keep only APScheduler's warnings (missed runs, overlapping runs) unless debugging.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def run_daemon(config_path: Path | None, exit_process: Callable[[int], None] = sys.exit) -> None:
    """Run the daemon until a stop signal and exit with its code.

    When jobs did not stop, the process exits at once (``os._exit``), because Python would
    otherwise wait for their threads forever. Every commit is already durable by then.
    """
    daemon = Daemon(config_path)
    code = daemon.run()
    if daemon.services is not None and daemon.services.running.running():
        logging.shutdown()
        os._exit(code)
    exit_process(code)
