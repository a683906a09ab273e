"""The optional Prometheus endpoint: the figures of ``acuse status`` and the poll durations.

The figures are read from the database at each scrape, so they match ``acuse status`` exactly
and need no bookkeeping in the jobs. Poll durations are a histogram that the jobs feed.
"""

import logging
from collections.abc import Callable, Iterator
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlmodel import select

from acuse.scheduling import JobOutcome
from config.database import Database, utcnow
from config.settings import Settings, project_views
from monitor.models import MailboxHealth
from reconcile.models import SendState
from reconcile.queries import project_status

log = logging.getLogger(__name__)

POLL_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class StatusCollector(Collector):
    """Reads the per-project and per-mailbox figures from the database at each scrape."""

    def __init__(self, settings: Callable[[], Settings], database: Database) -> None:
        self._settings = settings
        self._database = database

    def collect(self) -> Iterator[Metric]:
        families = _families()
        now = utcnow()
        with self._database.session() as session:
            for project in project_views(self._settings()):
                status = project_status(session, project, now)
                code = project.code
                families["messages"].add_metric([code, "evidence"], status.evidence)
                families["messages"].add_metric([code, "unrelated"], status.unrelated)
                families["messages"].add_metric([code, "quarantined"], status.quarantined)
                families["orphans"].add_metric([code], status.orphans)
                for state in SendState:
                    families["sends"].add_metric([code, state.value], status.states.get(state, 0))
            for health in session.exec(select(MailboxHealth)).all():
                _add_health(families, health)
        yield from families.values()


def _families() -> dict[str, GaugeMetricFamily]:
    mailbox = ["project", "mailbox"]
    return {
        "messages": GaugeMetricFamily(
            "acuse_messages", "Messages stored, by classification.", labels=["project", "class"]
        ),
        "orphans": GaugeMetricFamily(
            "acuse_orphans", "Evidence with no send after its deadline.", labels=["project"]
        ),
        "sends": GaugeMetricFamily(
            "acuse_sends", "Sends by state, judged now.", labels=["project", "state"]
        ),
        "last_success": GaugeMetricFamily(
            "acuse_mailbox_last_success_timestamp_seconds",
            "Unix time of the mailbox's last successful poll.",
            labels=mailbox,
        ),
        "failures": GaugeMetricFamily(
            "acuse_mailbox_consecutive_failures",
            "Polls of the mailbox that failed in a row.",
            labels=mailbox,
        ),
        "stored": GaugeMetricFamily(
            "acuse_mailbox_messages_stored", "Messages the mailbox's polls stored.", labels=mailbox
        ),
    }


def _add_health(families: dict[str, GaugeMetricFamily], health: MailboxHealth) -> None:
    labels = [health.project, health.folder]
    if health.last_success_at is not None:
        families["last_success"].add_metric(labels, health.last_success_at.timestamp())
    families["failures"].add_metric(labels, health.consecutive_failures)
    families["stored"].add_metric(labels, health.messages_stored)


class DaemonMetrics:
    """The daemon's registry, served over HTTP once ``serve`` is called."""

    def __init__(self, settings: Callable[[], Settings], database: Database) -> None:
        self.registry = CollectorRegistry()
        self.poll_duration = Histogram(
            "acuse_poll_duration_seconds",
            "Duration of mailbox polls, by outcome.",
            ["project", "mailbox", "outcome"],
            buckets=POLL_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(StatusCollector(settings, database))
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None

    def observe(self, outcome: JobOutcome) -> None:
        """Record the duration of a mailbox poll; other jobs and skipped turns are ignored."""
        spec = outcome.spec
        if outcome.skipped or spec.project is None or spec.mailbox is None:
            return
        seconds = (outcome.finished_at - outcome.started_at).total_seconds()
        result = "ok" if outcome.ok else "error"
        self.poll_duration.labels(spec.project, spec.mailbox, result).observe(seconds)

    def serve(self, host: str, port: int) -> None:
        """Start the HTTP endpoint on ``host:port`` in a background thread."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics endpoint listening", extra={"host": host, "port": port})

    def close(self) -> None:
        """Stop the HTTP endpoint."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
