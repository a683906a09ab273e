"""The alert policy over sends and evidence stored through the real import and ingest paths."""

import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory
from sqlmodel import select

from acuse.send_log_watch import SendLogImporter
from config.alert_settings import AlertKind
from config.database import Database
from config.settings import Settings, project_view
from monitor.mailbox_health import record_poll_failure, record_poll_success
from reconcile.alert_models import Alert, OutboxItem, OutboxMessage, OutboxPurpose, Resolution
from reconcile.alert_policy import evaluate_alerts, evaluate_digests
from tests.alert_scenario import (
    MANAGERS,
    OPERATORS,
    SendSpec,
    certificate_for,
    import_sends,
    ingest_evidence,
    local,
    run_jobs,
    scenario_settings,
    send_evidence,
)
from tests.evidence_factory import (
    CertificateFields,
    Outcome,
    PdfFile,
    corrupt_pdf,
    evidence_email,
    rejection_email,
)
from tests.smtp_server import FREEZEGUN_IGNORE, SmtpServer

pytestmark = pytest.mark.both_engines

SENT = local(2026, 11, 3, 9, 0)
MAILBOX = {
    "host": "imap.constructora.example",
    "username": "evidencias-tdp2@constructora.example",
    "password_file": "tdp2-imap",
}


@pytest.fixture
def clock() -> Iterator[FrozenDateTimeFactory]:
    with freeze_time(SENT, ignore=FREEZEGUN_IGNORE) as frozen:
        yield frozen


def spec(number: int, **values: object) -> SendSpec:
    fields: dict[str, object] = {
        "negocio": str(3000 + number),
        "client": f"Cliente Peñaloza {number}",
        "recipient": f"cliente{number}@correo.example",
        "sent_at": SENT,
        **values,
    }
    return SendSpec(**fields)  # type: ignore[arg-type]


def open_alerts(database: Database) -> list[Alert]:
    with database.session() as session:
        query = select(Alert).where(Alert.resolved_at.is_(None)).order_by(Alert.id)  # type: ignore[union-attr,arg-type]
        return list(session.execute(query).scalars())


def open_kinds(database: Database) -> list[AlertKind]:
    return [alert.kind for alert in open_alerts(database)]


def outbox(database: Database) -> list[OutboxMessage]:
    with database.session() as session:
        return list(session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())  # type: ignore[arg-type]


def test_fifty_missing_sends_make_one_email(
    make_settings: Callable[..., Settings],
    database: Database,
    smtp_server: SmtpServer,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(
        make_settings,
        smtp_server.smtp_settings(),
        alerts={"kinds": {"evidence_silence": {"enabled": False}}},
    )
    sends = [spec(number, sent_at=SENT + timedelta(seconds=number)) for number in range(50)]
    import_sends(database, settings, tmp_path, sends, SENT)
    deadline = SENT + timedelta(hours=6, minutes=1)

    for minutes in (0, 1, 2, 5):
        clock.move_to(deadline + timedelta(minutes=minutes))
        run_jobs(database, settings, deadline + timedelta(minutes=minutes))

    assert len(smtp_server.messages) == 1
    email = smtp_server.messages[0].email
    assert email["Subject"] == "[acuse] Torres del Parque: 50 sends not certified"
    text = email.get_body(("plain",)).get_content()
    assert text.count("Negocio: ") == 50
    html = smtp_server.messages[0].html
    assert html.count("<tr>") == 51
    rows = list(csv.reader(io.StringIO(smtp_server.messages[0].csv_text), delimiter=","))
    assert len(rows) == 51
    assert {row[0] for row in rows[1:]} == {str(3000 + number) for number in range(50)}


def test_window_splits_late_alerts(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(make_settings, None)
    import_sends(
        database,
        settings,
        tmp_path,
        [spec(1), spec(2, sent_at=SENT + timedelta(minutes=10))],
        SENT,
    )

    evaluate_alerts(database, settings, SENT + timedelta(hours=6))
    evaluate_alerts(database, settings, SENT + timedelta(hours=6, minutes=10))

    assert [row.kind for row in outbox(database)] == [
        AlertKind.CERTIFICATION_MISSING,
        AlertKind.CERTIFICATION_MISSING,
    ]


def test_delivery_failure_is_alerted(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(make_settings, None)
    failed = spec(1, client="Hernán Zuluaga")
    import_sends(database, settings, tmp_path, [failed], SENT)
    send_evidence(database, settings, failed, outcome=Outcome.FAILED)

    evaluate_alerts(database, settings, SENT + timedelta(minutes=30))

    alert = open_alerts(database)[0]
    details = json.loads(alert.details)
    assert alert.kind is AlertKind.DELIVERY_FAILED
    assert details["smtp_code"] is not None
    assert "550" in (details["smtp_detail"] or details["smtp_code"])


def test_rejection_is_alerted(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(make_settings, None)
    rejected = spec(1)
    import_sends(database, settings, tmp_path, [rejected], SENT)
    notice = rejection_email(certificate_for(rejected))
    ingest_evidence(database, settings, [notice])

    evaluate_alerts(database, settings, SENT + timedelta(minutes=30))

    alert = open_alerts(database)[0]
    assert alert.kind is AlertKind.CERTIFICATION_REJECTED
    assert json.loads(alert.details)["evidence_reason"]


def test_send_without_copy_is_alerted_at_once(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(make_settings, None)
    import_sends(database, settings, tmp_path, [spec(1, copied=False)], SENT)

    evaluate_alerts(database, settings, SENT + timedelta(minutes=1))

    assert open_kinds(database) == [AlertKind.NOT_COPIED]


def test_later_certified_send_supersedes_failure(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(make_settings, None)
    first = spec(1, copied=False)
    resent = spec(1, sent_at=SENT + timedelta(hours=2))
    import_sends(database, settings, tmp_path, [first], SENT)
    evaluate_alerts(database, settings, SENT + timedelta(minutes=1))
    import_sends(database, settings, tmp_path, [resent], SENT + timedelta(hours=2))
    send_evidence(database, settings, resent)

    evaluate_alerts(database, settings, SENT + timedelta(hours=3))

    with database.session() as session:
        alert = session.execute(select(Alert)).scalars().one()
    assert alert.resolution is Resolution.SUPERSEDED


def test_orphan_evidence_goes_to_digest(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
) -> None:
    settings = scenario_settings(make_settings, None)
    stray = CertificateFields(
        certificate_id="LLD-HUERFANO-1",
        recipient="Desconocida Muñoz <desconocida@correo.example>",
        subject="Estado de cuenta negocio 9999 - Torres del Parque",
        sent_at=SENT,
        delivered_at=SENT + timedelta(seconds=7),
    )
    ingest_evidence(database, settings, [evidence_email(stray)])

    evaluate_alerts(database, settings, SENT + timedelta(hours=25))

    rows = outbox(database)
    assert open_kinds(database) == [AlertKind.ORPHAN_EVIDENCE]
    assert [row.purpose for row in rows] == [OutboxPurpose.DIGEST]
    assert rows[0].send_after == local(2026, 11, 5, 7, 0)


def test_unreachable_mailbox_waits_for_threshold(
    make_settings: Callable[..., Settings], database: Database, clock: FrozenDateTimeFactory
) -> None:
    settings = scenario_settings(make_settings, None, mailbox=MAILBOX)
    record_poll_failure(database, "TDP2", "INBOX", "login failed: invalid credentials", SENT)

    evaluate_alerts(database, settings, SENT + timedelta(minutes=29))
    early = open_kinds(database)
    evaluate_alerts(database, settings, SENT + timedelta(minutes=30))

    alert = open_alerts(database)[0]
    assert early == []
    assert alert.kind is AlertKind.MAILBOX_UNREACHABLE
    assert json.loads(alert.details)["last_error"] == "login failed: invalid credentials"


def test_mailbox_recovery_resolves_alert(
    make_settings: Callable[..., Settings], database: Database, clock: FrozenDateTimeFactory
) -> None:
    settings = scenario_settings(make_settings, None, mailbox=MAILBOX)
    record_poll_failure(database, "TDP2", "INBOX", "connection refused", SENT)
    evaluate_alerts(database, settings, SENT + timedelta(hours=1))
    record_poll_success(database, "TDP2", "INBOX", 0, SENT + timedelta(hours=2))

    evaluate_alerts(database, settings, SENT + timedelta(hours=2))

    rows = outbox(database)
    assert open_kinds(database) == []
    assert [row.recipients for row in rows] == [", ".join(OPERATORS)] * 2
    assert [row.event.value for row in rows if row.event] == ["raised", "resolved"]


def test_evidence_silence_is_alerted(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(make_settings, None)
    early = spec(1)
    later = [spec(number, sent_at=SENT + timedelta(hours=number)) for number in range(2, 8)]
    import_sends(database, settings, tmp_path, [early, *later], SENT)
    send_evidence(database, settings, early)

    evaluate_alerts(database, settings, SENT + timedelta(hours=11, minutes=59))
    before = AlertKind.EVIDENCE_SILENCE in open_kinds(database)
    evaluate_alerts(database, settings, SENT + timedelta(hours=12))

    assert before is False
    assert AlertKind.EVIDENCE_SILENCE in open_kinds(database)


def test_quarantined_message_is_alerted(
    make_settings: Callable[..., Settings], database: Database, clock: FrozenDateTimeFactory
) -> None:
    settings = scenario_settings(make_settings, None)
    broken = evidence_email(
        [], subject="Correo certificado: x", extra_pdfs=[PdfFile("Mail_9.pdf", corrupt_pdf())]
    )
    ingest_evidence(database, settings, [broken])

    evaluate_alerts(database, settings, SENT + timedelta(minutes=1))

    rows = outbox(database)
    assert open_kinds(database) == [AlertKind.QUARANTINED_MESSAGES]
    assert rows[0].recipients == ", ".join(OPERATORS)


def test_switched_off_kind_raises_nothing(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(
        make_settings, None, project_alerts={"kinds": {"not_copied": {"enabled": False}}}
    )
    import_sends(database, settings, tmp_path, [spec(1, copied=False)], SENT)

    evaluate_alerts(database, settings, SENT + timedelta(minutes=1))

    assert open_kinds(database) == []


def test_kind_recipients_override(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(
        make_settings,
        None,
        project_alerts={"kinds": {"not_copied": {"recipients": ["juridica@constructora.example"]}}},
    )
    import_sends(database, settings, tmp_path, [spec(1, copied=False)], SENT)

    evaluate_alerts(database, settings, SENT + timedelta(minutes=1))

    assert outbox(database)[0].recipients == "juridica@constructora.example"


def test_digest_mode_kind_waits_for_digest(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(
        make_settings, None, project_alerts={"kinds": {"not_copied": {"mode": "digest"}}}
    )
    import_sends(database, settings, tmp_path, [spec(1, copied=False)], SENT)

    evaluate_alerts(database, settings, SENT + timedelta(minutes=1))

    rows = outbox(database)
    assert [row.purpose for row in rows] == [OutboxPurpose.DIGEST]
    assert rows[0].recipients == ", ".join(MANAGERS)


def test_daily_digest_is_queued_once(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(make_settings, None, project_alerts={"digest": True})
    import_sends(database, settings, tmp_path, [spec(1)], SENT)

    first = evaluate_digests(database, settings, local(2026, 11, 4, 7, 0))
    again = evaluate_digests(database, settings, local(2026, 11, 4, 18, 0))
    next_day = evaluate_digests(database, settings, local(2026, 11, 5, 7, 1))

    assert first.digests == 1
    assert again.digests == 0
    assert next_day.digests == 1
    assert [row.send_after for row in outbox(database)] == [
        local(2026, 11, 4, 7, 0),
        local(2026, 11, 5, 7, 0),
    ]


def test_no_digest_before_first_activity(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(make_settings, None, project_alerts={"digest": True})

    empty = evaluate_digests(database, settings, local(2026, 11, 4, 7, 0))
    clock.move_to(local(2026, 11, 4, 19, 35))
    import_sends(database, settings, tmp_path, [spec(1)], local(2026, 11, 4, 19, 35))
    first_start = evaluate_digests(database, settings, local(2026, 11, 4, 19, 35))
    next_day = evaluate_digests(database, settings, local(2026, 11, 5, 7, 0))

    assert empty.digests == 0
    assert first_start.digests == 0
    assert next_day.digests == 1
    assert [row.send_after for row in outbox(database)] == [local(2026, 11, 5, 7, 0)]


def test_digest_summarises_the_day(
    make_settings: Callable[..., Settings],
    database: Database,
    smtp_server: SmtpServer,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(
        make_settings,
        smtp_server.smtp_settings(),
        alerts={"kinds": {"evidence_silence": {"enabled": False}}},
        project_alerts={"digest": True, "kinds": {"certification_missing": {"mode": "digest"}}},
    )
    certified, missing = spec(1), spec(2, client="Íngrid Núñez")
    import_sends(database, settings, tmp_path, [certified, missing], SENT)
    send_evidence(database, settings, certified)
    evaluate_alerts(database, settings, SENT + timedelta(hours=7))

    digest_time = local(2026, 11, 4, 7, 0)
    clock.move_to(digest_time)
    run_jobs(database, settings, digest_time)

    email = smtp_server.messages[0].email
    text = smtp_server.messages[0].text
    assert email["Subject"] == "[acuse] Torres del Parque: daily summary of November 4, 2026"
    assert "   Sends: 2\n" in text
    assert "   Certified: 1\n" in text
    assert "   Not certified: 1\n" in text
    assert "Íngrid Núñez" in text
    assert len(smtp_server.messages) == 1


def test_alert_and_item_share_transaction(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    settings = scenario_settings(make_settings, None)
    import_sends(database, settings, tmp_path, [spec(1, copied=False)], SENT)

    evaluate_alerts(database, settings, SENT + timedelta(minutes=1))

    with database.session() as session:
        items = list(session.execute(select(OutboxItem)).scalars())
    assert len(items) == 1
    assert items[0].alert_id == open_alerts(database)[0].id


def test_failed_send_log_is_alerted(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    (tmp_path / "logs").mkdir()
    export = tmp_path / "logs" / "cartera.csv"
    export.write_text("Nombre;Fecha\nAna;03/11/2026 09:00\n", encoding="utf-8")
    settle(export)
    settings = scenario_settings(make_settings, None, send_log={"path": "logs/*.csv"})
    importer = SendLogImporter(settings, database)
    importer.import_new(project_view(settings, "TDP2"))
    evaluate_alerts(database, settings, SENT + timedelta(minutes=1))
    raised = open_alerts(database)
    export.write_text(
        "Correo cliente;Fecha de envío;Asunto\nana@example.co;03/11/2026 09:00;Hola\n",
        encoding="utf-8",
    )
    settle(export)
    clock.tick(timedelta(minutes=2))
    importer.import_new(project_view(settings, "TDP2"))

    evaluate_alerts(database, settings, SENT + timedelta(minutes=3))

    rows = outbox(database)
    assert [alert.kind for alert in raised] == [AlertKind.SEND_LOG_FAILED]
    assert json.loads(raised[0].details)["path"] == str(export.resolve())
    assert open_kinds(database) == []
    assert [row.recipients for row in rows] == [", ".join(OPERATORS)] * 2
    assert [row.event.value for row in rows if row.event] == ["raised", "resolved"]


def settle(path: Path) -> None:
    """Date the file a minute before the frozen clock, so the importer takes it as finished."""
    past = time.time() - 60
    os.utime(path, (past, past))
