"""Delivering the outbox to a real SMTP server: outages, retries, TLS, login and claims."""

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory
from sqlalchemy import update
from sqlmodel import select

from config.database import Database
from config.settings import Settings
from reconcile.alert_delivery import deliver_outbox, retry_delay
from reconcile.alert_models import OutboxMessage
from reconcile.alert_queue import queue_test_email
from tests.alert_scenario import (
    MANAGERS,
    OPERATORS,
    SendSpec,
    import_sends,
    local,
    project_of,
    run_jobs,
    scenario_settings,
)
from tests.smtp_server import FREEZEGUN_IGNORE, PASSWORD, USERNAME, SmtpServer

pytestmark = pytest.mark.both_engines

START = local(2026, 11, 3, 8, 0)
SENDS = [
    SendSpec("2001", "Ana Peñaloza", "ana.penaloza@correo.example", local(2026, 11, 3, 9, 0)),
    SendSpec("2002", "Luis Ñáñez", "luis.nanez@correo.example", local(2026, 11, 3, 9, 40)),
    SendSpec("2003", "Sofía Díaz", "sofia.diaz@correo.example", local(2026, 11, 3, 10, 30)),
]
SERVER_DOWN = local(2026, 11, 3, 14, 55)
SERVER_UP = SERVER_DOWN + timedelta(hours=2)


@pytest.fixture
def clock() -> Iterator[FrozenDateTimeFactory]:
    with freeze_time(START, ignore=FREEZEGUN_IGNORE) as frozen:
        yield frozen


def outbox_rows(database: Database) -> list[OutboxMessage]:
    with database.session() as session:
        return list(session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())  # type: ignore[arg-type]


def every_five_minutes(start, end) -> Iterator:  # type: ignore[no-untyped-def]
    moment = start
    while moment <= end:
        yield moment
        moment += timedelta(minutes=5)


def test_outage_of_two_hours_loses_nothing(
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
    import_sends(database, settings, tmp_path, SENDS, START)
    smtp_server.stop()
    for moment in every_five_minutes(SERVER_DOWN, SERVER_UP - timedelta(minutes=5)):
        clock.move_to(moment)
        run_jobs(database, settings, moment)
    delivered_while_down = len(smtp_server.messages)
    smtp_server.start()
    for moment in every_five_minutes(SERVER_UP, SERVER_UP + timedelta(hours=1)):
        clock.move_to(moment)
        run_jobs(database, settings, moment)

    subjects = Counter(message.subject for message in smtp_server.messages)
    assert delivered_while_down == 0
    assert subjects["[acuse] Torres del Parque: 1 send not certified"] == 3
    assert subjects["[acuse] alert emails are not being delivered"] == 1
    assert subjects["[acuse] acuse: 1 problem solved"] == 1
    assert sum(subjects.values()) == 5
    assert all(row.sent_at is not None for row in outbox_rows(database))


def test_failed_attempt_is_recorded(
    make_settings: Callable[..., Settings],
    database: Database,
    smtp_server: SmtpServer,
    clock: FrozenDateTimeFactory,
) -> None:
    settings = scenario_settings(make_settings, smtp_server.smtp_settings())
    with database.write() as session:
        queue_test_email(session, project_of(settings), tuple(MANAGERS), START)
    smtp_server.stop()

    summary = deliver_outbox(database, settings, START)

    row = outbox_rows(database)[0]
    assert summary.failed == 1
    assert summary.waiting == 1
    assert row.attempts == 1
    assert row.first_failed_at == START
    assert row.next_attempt_at == START + timedelta(minutes=1)
    assert row.last_error is not None
    assert f"127.0.0.1:{smtp_server.port}" in row.last_error
    assert row.raw is not None


def test_retry_waits_until_its_time(
    make_settings: Callable[..., Settings],
    database: Database,
    smtp_server: SmtpServer,
    clock: FrozenDateTimeFactory,
) -> None:
    settings = scenario_settings(make_settings, smtp_server.smtp_settings())
    with database.write() as session:
        queue_test_email(session, project_of(settings), tuple(MANAGERS), START)
    smtp_server.stop()
    deliver_outbox(database, settings, START)
    smtp_server.start()

    early = deliver_outbox(database, settings, START + timedelta(seconds=30))
    on_time = deliver_outbox(database, settings, START + timedelta(minutes=1))

    assert early.claimed == 0
    assert on_time.sent == 1
    assert len(smtp_server.messages) == 1


def test_retry_delay_doubles_up_to_maximum(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(alerts={"retry_first": "1m", "retry_max": "30m"})

    delays = [retry_delay(settings, attempts) for attempts in range(1, 8)]

    assert delays == [
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=4),
        timedelta(minutes=8),
        timedelta(minutes=16),
        timedelta(minutes=30),
        timedelta(minutes=30),
    ]


def test_claimed_email_is_not_sent_twice(
    make_settings: Callable[..., Settings],
    database: Database,
    smtp_server: SmtpServer,
    clock: FrozenDateTimeFactory,
) -> None:
    settings = scenario_settings(make_settings, smtp_server.smtp_settings())
    with database.write() as session:
        queue_test_email(session, project_of(settings), tuple(MANAGERS), START)
        session.execute(
            update(OutboxMessage).values(
                claimed_by="another-instance", claimed_until=START + timedelta(minutes=10)
            )
        )

    while_claimed = deliver_outbox(database, settings, START)
    after_lease = deliver_outbox(database, settings, START + timedelta(minutes=11))

    assert while_claimed.claimed == 0
    assert after_lease.sent == 1
    assert len(smtp_server.messages) == 1


def test_missing_smtp_section_keeps_email(
    make_settings: Callable[..., Settings], database: Database, clock: FrozenDateTimeFactory
) -> None:
    settings = scenario_settings(make_settings, None)
    with database.write() as session:
        queue_test_email(session, project_of(settings), tuple(MANAGERS), START)

    summary = deliver_outbox(database, settings, START)

    assert summary.failed == 1
    assert summary.last_error is not None
    assert "[smtp]" in summary.last_error
    assert outbox_rows(database)[0].sent_at is None


def test_starttls_login_delivers(
    make_settings: Callable[..., Settings],
    database: Database,
    tls_smtp_server: tuple[SmtpServer, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, ca_file = tls_smtp_server
    (tmp_path / "smtp-password").write_text(PASSWORD + "\n", encoding="utf-8")
    smtp = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "starttls",
        "username": USERNAME,
        "password_file": "smtp-password",
        "from": "Acuse <alertas@constructora.example>",
        "ca_file": str(ca_file),
        "timeout": "10s",
    }
    settings = scenario_settings(make_settings, smtp)
    with database.write() as session:
        queue_test_email(session, project_of(settings), tuple(OPERATORS), START)
    caplog.set_level(logging.DEBUG)

    summary = deliver_outbox(database, settings, START)

    assert summary.sent == 1
    assert server.messages[0].subject == "[acuse] Torres del Parque: test email"
    assert PASSWORD not in caplog.text


def test_untrusted_certificate_is_refused(
    make_settings: Callable[..., Settings],
    database: Database,
    tls_smtp_server: tuple[SmtpServer, Path],
    tmp_path: Path,
    clock: FrozenDateTimeFactory,
) -> None:
    server, _ca_file = tls_smtp_server
    (tmp_path / "smtp-password").write_text(PASSWORD, encoding="utf-8")
    smtp = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "starttls",
        "username": USERNAME,
        "password_file": "smtp-password",
        "from": "alertas@constructora.example",
        "timeout": "10s",
    }
    settings = scenario_settings(make_settings, smtp)
    with database.write() as session:
        queue_test_email(session, project_of(settings), tuple(OPERATORS), START)

    summary = deliver_outbox(database, settings, START)

    assert summary.sent == 0
    assert server.messages == []
    assert summary.last_error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in summary.last_error


def test_plain_server_without_starttls_is_refused(
    make_settings: Callable[..., Settings],
    database: Database,
    smtp_server: SmtpServer,
    clock: FrozenDateTimeFactory,
) -> None:
    smtp = {**smtp_server.smtp_settings(), "security": "starttls"}
    settings = scenario_settings(make_settings, smtp)
    with database.write() as session:
        queue_test_email(session, project_of(settings), tuple(OPERATORS), START)

    summary = deliver_outbox(database, settings, START)

    assert summary.sent == 0
    assert summary.last_error is not None
    assert "STARTTLS" in summary.last_error
