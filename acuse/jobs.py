"""The daemon's jobs: what each one does, and the builders that list them from the settings.

Each builder takes the shared DaemonServices and the settings and returns JobSpecs. The daemon
calls every builder in JOB_BUILDERS at start and at each reload, and adds, replaces or removes
jobs by id and fingerprint. A new kind of job is one more builder appended to JOB_BUILDERS; the
runner gives it backoff, a time limit and error logs.

A project's lock serialises its reconciliation passes. A mailbox's lock serialises its polls,
so the poll job and the IDLE watcher never read the same folder at once. Among several
instances, a mailbox is polled only by the instance that holds its lease (acuse.instances).
"""

import hashlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from zoneinfo import ZoneInfo

from acuse.idle_watch import IdleWatchers
from acuse.instances import InstanceKeeper, configured_mailboxes
from acuse.polling import MailboxConnections, MailboxPoller, mailbox_folder
from acuse.scheduling import (
    JobOutcome,
    JobRun,
    JobSpec,
    RunningJobs,
    cron_trigger,
    interval_trigger,
)
from acuse.send_log_watch import SendLogImporter
from config.database import Database, utcnow
from config.durations import format_duration
from config.errors import AcuseError
from config.i18n import _
from config.settings import ProjectView, Settings, project_views
from monitor.archive import Archive
from monitor.mailbox_poll import PollResult
from reconcile.alert_delivery import deliver_outbox
from reconcile.alert_policy import evaluate_alerts, evaluate_digests
from reconcile.reconciliation import reconcile_project, subject_normalizer

log = logging.getLogger(__name__)

JobBuilder = Callable[["DaemonServices", Settings], Iterable[JobSpec]]


@dataclass
class DaemonServices:
    """Shared state of the jobs: the database, the archive, locks, the stop signal, reporting."""

    database: Database
    archive: Archive
    running: RunningJobs
    stop: threading.Event
    report: Callable[[JobOutcome], None] = lambda outcome: None
    instance: InstanceKeeper | None = None
    idle_watchers: IdleWatchers = field(init=False)
    connections: MailboxConnections = field(default_factory=MailboxConnections)
    _project_locks: defaultdict[str, threading.Lock] = field(
        default_factory=lambda: defaultdict(threading.Lock)
    )
    _mailbox_locks: defaultdict[str, threading.Lock] = field(
        default_factory=lambda: defaultdict(threading.Lock)
    )

    def __post_init__(self) -> None:
        self.idle_watchers = IdleWatchers(self)

    def project_lock(self, code: str) -> threading.Lock:
        """Return the lock that serialises reconciliation of project ``code``."""
        return self._project_locks[code]

    def mailbox_lock(self, code: str) -> threading.Lock:
        """Return the lock that serialises polls of project ``code``'s mailbox."""
        return self._mailbox_locks[code]

    def holds_mailbox(self, project: str, folder: str) -> bool:
        """Return whether this instance may poll the folder now; true without an instance."""
        return self.instance is None or self.instance.holds(project, folder)

    def poller(self, settings: Settings) -> MailboxPoller:
        return MailboxPoller(settings, self.database, self.archive, self.connections)

    def after_poll(self, project: ProjectView, result: PollResult) -> None:
        """Reconcile the project when the poll stored messages."""
        if result.counts.stored:
            self.reconcile(project)

    def reconcile(self, project: ProjectView) -> None:
        """Run one reconciliation pass of ``project``, waiting for any pass in progress."""
        with self.project_lock(project.code):
            reconcile_project(self.database, project, subject_normalizer(project))


def fingerprint(settings: Settings, project: ProjectView, *parts: str) -> str:
    """Return a digest of everything in ``settings`` that the project's jobs depend on."""
    digest = hashlib.sha256()
    digest.update(project.settings.model_dump_json().encode())
    digest.update(settings.defaults.model_dump_json().encode())
    digest.update(project.provider.model_dump_json().encode())
    digest.update(str(settings.config_dir).encode())
    for part in parts:
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def aborted_error_text(run: JobRun) -> Callable[[AcuseError], str]:
    """Word a failure for the health record, naming the time limit when the run hit it."""

    def text(error: AcuseError) -> str:
        if run.abort_reason == "timeout":
            return _(
                "The poll did not finish within its time limit of {limit} and was aborted, "
                "because the server stopped responding. Check the server, or raise "
                "defaults.job_timeout."
            ).format(limit=format_duration(run.spec.timeout))
        return str(error)

    return text


def poll_job(
    services: DaemonServices, settings: Settings, project: ProjectView, run: JobRun
) -> None:
    """Poll the project's mailbox once, unless its IDLE watcher keeps it up to date.

    Without the mailbox's lease the job stops the mailbox's IDLE watcher, logs out of its kept
    connection and does nothing else. A lease lost during a poll ends the poll after the batch
    in progress.
    """
    mailbox = project.settings.mailbox
    assert mailbox is not None
    if not services.holds_mailbox(project.code, mailbox.folder):
        services.idle_watchers.stop(project.code)
        services.connections.discard(project.code)
        log.debug(
            "poll skipped: the mailbox is leased to another instance", extra=run.spec.log_fields()
        )
        return

    if mailbox.idle:
        watcher = services.idle_watchers.ensure(settings, project, run.spec.fingerprint)
        if watcher.owns_mailbox:
            log.debug(
                "poll skipped: the IDLE watcher reads this mailbox", extra=run.spec.log_fields()
            )
            return

    with services.mailbox_lock(project.code):
        result = services.poller(settings).poll_once(
            project,
            should_continue=lambda: (
                run.should_continue() and services.holds_mailbox(project.code, mailbox.folder)
            ),
            on_source=lambda source: run.on_abort(source.abort),
            error_text=aborted_error_text(run),
        )
    services.after_poll(project, result)


def reconcile_job(services: DaemonServices, project: ProjectView, run: JobRun) -> None:
    """Run the project's periodic reconciliation pass, which also moves sends past deadlines."""
    services.reconcile(project)


def send_log_job(
    services: DaemonServices, settings: Settings, project: ProjectView, run: JobRun
) -> None:
    """Import what is new in the project's send log, then reconcile when sends were added."""
    importer = SendLogImporter(settings, services.database, services.instance)
    summaries = importer.import_new(project, run.should_continue)
    if any(summary.added for summary in summaries):
        services.reconcile(project)


def mailbox_jobs(services: DaemonServices, settings: Settings) -> list[JobSpec]:
    """A poll job per project mailbox, every poll interval; IDLE mailboxes start a watcher.

    The connections of projects that no longer have a mailbox are closed.
    """
    specs: list[JobSpec] = []
    for project in project_views(settings):
        if project.settings.mailbox is None:
            continue
        specs.append(
            JobSpec(
                id=f"poll:{project.code}",
                func=partial(poll_job, services, settings, project),
                trigger=interval_trigger(project.poll_interval, project.timezone),
                fingerprint=fingerprint(settings, project),
                timeout=project.job_timeout,
                retry_base=project.poll_interval,
                project=project.code,
                mailbox=mailbox_folder(project),
            )
        )
    services.connections.retain(spec.project for spec in specs if spec.project)
    return specs


def reconcile_jobs(services: DaemonServices, settings: Settings) -> list[JobSpec]:
    """A reconciliation job per project, every reconcile interval."""
    return [
        JobSpec(
            id=f"reconcile:{project.code}",
            func=partial(reconcile_job, services, project),
            trigger=interval_trigger(project.reconcile_interval, project.timezone),
            fingerprint=fingerprint(settings, project),
            timeout=project.job_timeout,
            retry_base=project.reconcile_interval,
            project=project.code,
        )
        for project in project_views(settings)
    ]


def send_log_jobs(services: DaemonServices, settings: Settings) -> list[JobSpec]:
    """A send-log import job per project whose send log is a watched glob or a SQL query.

    ``send_log.cron`` runs it at wall-clock times in the project's time zone; otherwise it
    runs every ``send_log.interval`` (default ``defaults.send_log_interval``).
    """
    specs: list[JobSpec] = []
    for project in project_views(settings):
        config = project.settings.send_log
        if not config.watched:
            continue
        if config.cron is not None:
            trigger = cron_trigger(config.cron, project.timezone)
        else:
            trigger = interval_trigger(project.send_log_interval, project.timezone)
        specs.append(
            JobSpec(
                id=f"send-log:{project.code}",
                func=partial(send_log_job, services, settings, project),
                trigger=trigger,
                fingerprint=fingerprint(settings, project),
                timeout=project.job_timeout,
                retry_base=project.send_log_interval,
                project=project.code,
            )
        )
    return specs


def alerts_fingerprint(settings: Settings) -> str:
    """Return a digest of the settings that alert evaluation and delivery depend on."""
    digest = hashlib.sha256()
    digest.update(settings.alerts.model_dump_json().encode())
    digest.update(settings.smtp.model_dump_json().encode() if settings.smtp else b"")
    for project in settings.projects:
        digest.update(project.model_dump_json().encode())
    return digest.hexdigest()[:16]


def evaluate_alerts_job(services: DaemonServices, settings: Settings, run: JobRun) -> None:
    """Reconcile every project, then raise, remind and resolve alerts and queue due digests.

    The reconciliation first links sends that a send-log import added since the last pass, so
    their stored evidence is seen and they are not alerted as missing by mistake.
    """
    for project in project_views(settings):
        services.reconcile(project)
    now = utcnow()
    evaluate_alerts(services.database, settings, now)
    evaluate_digests(services.database, settings, now)


def deliver_alerts_job(services: DaemonServices, settings: Settings, run: JobRun) -> None:
    """Send the outbox emails that are due."""
    deliver_outbox(services.database, settings, utcnow())


def alert_jobs(services: DaemonServices, settings: Settings) -> list[JobSpec]:
    """Alert evaluation every ``alerts.check_every``; outbox delivery too when SMTP is set."""
    every = settings.alerts.check_every
    zone = ZoneInfo(settings.defaults.timezone)
    common = {
        "trigger": interval_trigger(every, zone),
        "fingerprint": alerts_fingerprint(settings),
        "timeout": settings.defaults.job_timeout,
        "retry_base": every,
    }
    specs = [
        JobSpec(
            id="alerts:evaluate", func=partial(evaluate_alerts_job, services, settings), **common
        )
    ]
    if settings.smtp is not None:
        specs.append(
            JobSpec(
                id="alerts:deliver", func=partial(deliver_alerts_job, services, settings), **common
            )
        )
    return specs


def renew_instance_job(services: DaemonServices, settings: Settings, run: JobRun) -> None:
    """Renew this instance's leases and claim its share of the free mailboxes."""
    assert services.instance is not None
    services.instance.renew(settings, utcnow())


def _instance_fingerprint(settings: Settings) -> str:
    digest = hashlib.sha256(settings.instances.model_dump_json().encode())
    digest.update(repr(configured_mailboxes(settings)).encode())
    return digest.hexdigest()[:16]


def instance_jobs(services: DaemonServices, settings: Settings) -> list[JobSpec]:
    """Return the lease renewal job, every ``instances.renew_every``, for a daemon instance."""
    if services.instance is None:
        return []
    every = settings.instances.renew_every
    return [
        JobSpec(
            id="instances:renew",
            func=partial(renew_instance_job, services, settings),
            trigger=interval_trigger(every, ZoneInfo(settings.defaults.timezone)),
            fingerprint=_instance_fingerprint(settings),
            timeout=settings.instances.hold_for,
            retry_base=every,
            max_backoff=every,
        )
    ]


JOB_BUILDERS: list[JobBuilder] = [
    instance_jobs,
    mailbox_jobs,
    send_log_jobs,
    reconcile_jobs,
    alert_jobs,
]


def build_jobs(
    services: DaemonServices, settings: Settings, builders: Iterable[JobBuilder] | None = None
) -> list[JobSpec]:
    """List every job the settings call for; raise ValueError when two share an id."""
    specs: list[JobSpec] = []
    seen: set[str] = set()
    for builder in JOB_BUILDERS if builders is None else builders:
        for spec in builder(services, settings):
            if spec.id in seen:
                message = f"two daemon jobs have the id {spec.id!r}: give each job its own id"
                raise ValueError(message)
            seen.add(spec.id)
            specs.append(spec)
    return specs
