"""A project whose sends and evidence go through the real import, ingest and reconcile paths.

Alert tests drive the daemon's three alert jobs at chosen moments (``run_jobs``) while
freezegun holds the clock, so the times that ingest and import stamp agree with the
scenario's timeline.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from config.database import Database
from config.settings import ProjectView, Settings, project_view
from monitor.archive import Archive
from monitor.ingest import IncomingMessage, Ingestor
from reconcile.alert_delivery import DeliverySummary, deliver_outbox
from reconcile.alert_policy import AlertSummary, evaluate_alerts, evaluate_digests
from reconcile.reconciliation import reconcile_project, subject_normalizer
from reconcile.send_import import import_send_log
from tests.evidence_factory import CertificateFields, evidence_email
from tests.send_log_samples import HEADERS, row, write_csv

BOGOTA = ZoneInfo("America/Bogota")
PROJECT_CODE = "TDP2"
PROJECT_NAME = "Torres del Parque"
MANAGERS = ["cartera@constructora.example", "gerencia@constructora.example"]
OPERATORS = ["operaciones@constructora.example"]


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A time in Bogotá, as PACO logs it."""
    return datetime(year, month, day, hour, minute, tzinfo=BOGOTA)


@dataclass(frozen=True)
class SendSpec:
    """One row of the send log."""

    negocio: str
    client: str
    recipient: str
    sent_at: datetime
    subject: str = ""
    copied: bool = True
    inmueble: str = "Torre C - 802"

    @property
    def full_subject(self) -> str:
        return self.subject or f"Estado de cuenta negocio {self.negocio} - Torres del Parque"


def scenario_settings(
    make_settings: Callable[..., Settings],
    smtp: dict[str, Any] | None,
    *,
    locale: str = "en",
    alerts: dict[str, Any] | None = None,
    project_alerts: dict[str, Any] | None = None,
    **project: Any,
) -> Settings:
    """Settings of one project in Bogotá with a 6-hour deadline, its managers and operators.

    ``locale`` is the project's and the installation's, so operators' alerts speak it too.
    """
    sections: dict[str, Any] = {
        "defaults": {"locale": locale},
        "alerts": {"operators": OPERATORS, **(alerts or {})},
        "projects": [
            {
                "code": PROJECT_CODE,
                "name": PROJECT_NAME,
                "timezone": "America/Bogota",
                "locale": locale,
                "managers": MANAGERS,
                "missing_after": "6h",
                "reference_pattern": r"negocio (\d+)",
                "alerts": {"digest": False, **(project_alerts or {})},
                **project,
            }
        ],
    }
    if smtp is not None:
        sections["smtp"] = smtp
    return make_settings(**sections)


def project_of(settings: Settings) -> ProjectView:
    return project_view(settings, PROJECT_CODE)


def import_sends(
    database: Database, settings: Settings, folder: Path, sends: Sequence[SendSpec], now: datetime
) -> None:
    """Write the sends as PACO's CSV export and import it."""
    rows = [
        row(
            spec.recipient,
            spec.sent_at.astimezone(BOGOTA).strftime("%d/%m/%Y %H:%M"),
            spec.full_subject,
            negocio=spec.negocio,
            inmueble=spec.inmueble,
            client=spec.client,
            copied="Sí" if spec.copied else "No",
        )
        for spec in sends
    ]
    path = write_csv(folder / f"envios-{now:%Y%m%d%H%M%S}.csv", [HEADERS, *rows])
    import_send_log(database, path, project_of(settings), now)


def certificate_for(spec: SendSpec, **values: Any) -> CertificateFields:
    """The certificate Lleida.net would issue for ``spec``."""
    sent = spec.sent_at.astimezone(UTC) + timedelta(minutes=1)
    fields: dict[str, Any] = {
        "certificate_id": f"LLD-{spec.negocio}-{spec.recipient.split('@')[0]}",
        "recipient": f"{spec.client} <{spec.recipient}>",
        "subject": spec.full_subject,
        "message_id": f"{spec.negocio}.{spec.recipient}@paco.constructora.example",
        "sent_at": sent,
        "delivered_at": sent + timedelta(seconds=7),
        **values,
    }
    return CertificateFields(**fields)


def ingest_evidence(database: Database, settings: Settings, messages: Sequence[bytes]) -> None:
    """Store and read evidence messages as the mailbox poll would, then reconcile."""
    project = project_of(settings)
    ingestor = Ingestor(database, Archive(settings.archive_path), project)
    incoming = [
        IncomingMessage(raw=raw, origin="file", location=f"evidence-{index}.eml")
        for index, raw in enumerate(messages)
    ]
    ingestor.ingest_all(incoming)
    reconcile_project(database, project, subject_normalizer(project))


def send_evidence(database: Database, settings: Settings, spec: SendSpec, **values: Any) -> None:
    """Ingest the evidence of one send."""
    ingest_evidence(database, settings, [evidence_email(certificate_for(spec, **values))])


@dataclass(frozen=True)
class JobsRun:
    """What the three alert jobs did in one turn."""

    alerts: AlertSummary
    digests: AlertSummary
    delivery: DeliverySummary


def run_jobs(database: Database, settings: Settings, now: datetime) -> JobsRun:
    """Run the alert jobs as the daemon does: evaluate, queue digests, deliver."""
    alerts = evaluate_alerts(database, settings, now)
    digests = evaluate_digests(database, settings, now)
    delivery = deliver_outbox(database, settings, now)
    return JobsRun(alerts, digests, delivery)
