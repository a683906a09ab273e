"""The life of an alert against a real SMTP server: raised at the deadline, reminded, resolved.

freezegun holds the clock; the server runs on the real one. Every step runs the three alert
jobs the way the daemon does, and the server's inbox must hold exactly the emails expected.
"""

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory
from sqlmodel import select

from config.database import Database, open_database
from config.settings import Settings
from reconcile.alert_models import Alert, OutboxMessage, Resolution
from tests.alert_scenario import (
    MANAGERS,
    SendSpec,
    import_sends,
    local,
    run_jobs,
    scenario_settings,
    send_evidence,
)
from tests.smtp_server import FREEZEGUN_IGNORE, SmtpServer

pytestmark = pytest.mark.both_engines

SEND = SendSpec(
    negocio="1075",
    client="Fabio Londoño",
    recipient="fabio.londono@correo.example",
    sent_at=local(2026, 11, 3, 14, 0),
)
DEADLINE = SEND.sent_at + timedelta(hours=6)


@pytest.fixture
def clock() -> Iterator[FrozenDateTimeFactory]:
    with freeze_time(SEND.sent_at + timedelta(minutes=5), ignore=FREEZEGUN_IGNORE) as frozen:
        yield frozen


@pytest.fixture
def settings(make_settings: Callable[..., Settings], smtp_server: SmtpServer) -> Settings:
    # Only the managers' alert is under test; one send without evidence for a day would also
    # raise the operators' evidence_silence.
    silence_off = {"kinds": {"evidence_silence": {"enabled": False}}}
    return scenario_settings(make_settings, smtp_server.smtp_settings(), alerts=silence_off)


@pytest.fixture
def imported(
    database: Database, settings: Settings, tmp_path: Path, clock: FrozenDateTimeFactory
) -> Database:
    import_sends(database, settings, tmp_path, [SEND], SEND.sent_at + timedelta(minutes=5))
    return database


def advance(clock: FrozenDateTimeFactory, database: Database, settings: Settings, moment) -> None:  # type: ignore[no-untyped-def]
    clock.move_to(moment)
    run_jobs(database, settings, moment)


def subjects(server: SmtpServer) -> list[str]:
    return [message.subject for message in server.messages]


def test_pending_send_raises_nothing(
    imported: Database, settings: Settings, smtp_server: SmtpServer, clock: FrozenDateTimeFactory
) -> None:
    advance(clock, imported, settings, DEADLINE - timedelta(minutes=1))
    advance(clock, imported, settings, DEADLINE + timedelta(minutes=4))

    assert smtp_server.messages == []


def test_deadline_sends_one_alert(
    imported: Database, settings: Settings, smtp_server: SmtpServer, clock: FrozenDateTimeFactory
) -> None:
    advance(clock, imported, settings, DEADLINE)
    before_window = list(smtp_server.messages)
    advance(clock, imported, settings, DEADLINE + timedelta(minutes=5))

    assert before_window == []
    assert subjects(smtp_server) == ["[acuse] Torres del Parque: 1 send not certified"]
    assert sorted(smtp_server.messages[0].rcpt_tos) == sorted(MANAGERS)
    assert smtp_server.messages[0].mail_from == "alertas@constructora.example"


def test_full_life_of_missing_certification(
    imported: Database,
    settings: Settings,
    smtp_server: SmtpServer,
    clock: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    for minutes in (0, 5, 10, 60, 600):
        advance(clock, imported, settings, DEADLINE + timedelta(minutes=minutes))
    imported.dispose()
    restarted = open_database(settings.database_url)
    for minutes in (0, 5, 23 * 60):
        advance(clock, restarted, settings, DEADLINE + timedelta(hours=1, minutes=minutes))
    advance(clock, restarted, settings, DEADLINE + timedelta(hours=24))
    advance(clock, restarted, settings, DEADLINE + timedelta(hours=24, minutes=5))
    advance(clock, restarted, settings, DEADLINE + timedelta(hours=30))
    send_evidence(restarted, settings, SEND)
    advance(clock, restarted, settings, DEADLINE + timedelta(hours=30, minutes=1))
    advance(clock, restarted, settings, DEADLINE + timedelta(hours=30, minutes=6))
    advance(clock, restarted, settings, DEADLINE + timedelta(hours=60))

    assert subjects(smtp_server) == [
        "[acuse] Torres del Parque: 1 send not certified",
        "[acuse] Torres del Parque: 1 send not certified (reminder)",
        "[acuse] Torres del Parque: 1 problem solved",
    ]
    resolution_text = smtp_server.messages[2].text
    assert "certified late" in resolution_text
    assert "LLD-1075-fabio.londono" in resolution_text
    restarted.dispose()


def test_alert_row_records_its_life(
    imported: Database, settings: Settings, smtp_server: SmtpServer, clock: FrozenDateTimeFactory
) -> None:
    advance(clock, imported, settings, DEADLINE)
    advance(clock, imported, settings, DEADLINE + timedelta(hours=24))
    send_evidence(imported, settings, SEND)
    advance(clock, imported, settings, DEADLINE + timedelta(hours=25))

    with imported.session() as session:
        alerts = list(session.execute(select(Alert)).scalars())
    assert len(alerts) == 1
    assert alerts[0].opened_at == DEADLINE
    assert alerts[0].reminders == 1
    assert alerts[0].resolved_at == DEADLINE + timedelta(hours=25)
    assert alerts[0].resolution is Resolution.CERTIFIED


def test_second_run_at_same_time_queues_nothing(
    imported: Database, settings: Settings, smtp_server: SmtpServer, clock: FrozenDateTimeFactory
) -> None:
    advance(clock, imported, settings, DEADLINE)

    again = run_jobs(imported, settings, DEADLINE)

    assert again.alerts.raised == 0
    assert again.alerts.queued == 0
    with imported.session() as session:
        assert len(list(session.execute(select(OutboxMessage)).scalars())) == 1


def test_accepted_email_is_marked_sent(
    imported: Database, settings: Settings, smtp_server: SmtpServer, clock: FrozenDateTimeFactory
) -> None:
    advance(clock, imported, settings, DEADLINE)
    advance(clock, imported, settings, DEADLINE + timedelta(minutes=5))

    with imported.session() as session:
        outbox = session.execute(select(OutboxMessage)).scalars().one()
    assert outbox.sent_at == DEADLINE + timedelta(minutes=5)
    assert outbox.smtp_reply == "250 2.0.0 Ok: queued as TEST0001"
    assert outbox.message_id == str(smtp_server.messages[0].email["Message-ID"]).strip()
