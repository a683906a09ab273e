"""Three ``acuse run`` processes share one PostgreSQL database, and one is killed mid-poll.

Given six project mailboxes on one Dovecot, the survivors take over the dead instance's
mailboxes within one lease period, every message ends up stored exactly once, and every alert
email reaches the SMTP server exactly once.
"""

import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.daemon_process import (
    DaemonProcess,
    dovecot_mailbox,
    project_toml,
    running_daemon,
    wait_until,
    write_config,
)
from tests.dovecot import DovecotServer
from tests.send_log_samples import HEADERS, row, write_csv
from tests.smtp_server import SmtpServer
from tests.test_daemon_alerts import alert_sections

PROJECTS = [f"P{number}" for number in range(1, 7)]
INSTANCES = ["acuse-1", "acuse-2", "acuse-3"]
MESSAGES_PER_MAILBOX = 40
LEASE = timedelta(seconds=8)
MANAGER = "cartera@constructora.example"


def unrelated_email(project: str, number: int) -> bytes:
    """A message that is not evidence, unique per project and number, quick to read."""
    message = EmailMessage()
    message["From"] = "boletin@proveedor.example"
    message["To"] = f"evidencias-{project.lower()}@constructora.example"
    message["Subject"] = f"Boletín {project} número {number}"
    message["Date"] = format_datetime(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    message["Message-ID"] = make_msgid(idstring=f"{project}.{number}", domain="proveedor.example")
    message.set_content(f"Contenido {number} del boletín del proyecto {project}.\n")
    return message.as_bytes()


def send_log(root: Path, project: str, wave: int) -> None:
    """Write a settled export with one send of ``project`` that has no evidence."""
    folder = root / f"envios-{project}"
    folder.mkdir(exist_ok=True)
    path = write_csv(
        folder / f"ola-{wave}.csv",
        [
            HEADERS,
            row(
                f"cliente{wave}@correo.example",
                f"1{wave}/11/2026 09:00",
                f"Estado de cuenta ola {wave}",
                negocio=f"{project}-{wave}",
            ),
        ],
    )
    # An export written a minute ago has settled; a fresh one waits for the next turn.
    past = time.time() - 60
    os.utime(path, (past, past))


def daemon_sections(smtp_server: SmtpServer) -> str:
    return f"""
fetch_batch = 1
send_log_interval = "1s"

[instances]
lease = "{int(LEASE.total_seconds())}s"
{alert_sections(smtp_server)}"""


class SharedDatabase:
    """Read queries on the schema the three daemons share."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)

    def scalar(self, sql: str, **params: object) -> object:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        with self.engine.connect() as connection:
            return [tuple(found) for found in connection.execute(text(sql), params)]

    def holders(self) -> dict[str, str | None]:
        rows = self.rows(
            "SELECT project, holder FROM mailbox_lease WHERE expires_at > now() ORDER BY project"
        )
        return {str(project): holder for project, holder in rows}  # type: ignore[misc]

    def stored(self, project: str) -> int:
        return int(self.scalar("SELECT count(*) FROM message WHERE project = :p", p=project))  # type: ignore[arg-type]

    def outbox_settled(self) -> bool:
        waiting = self.scalar("SELECT count(*) FROM alert_outbox WHERE sent_at IS NULL")
        return waiting == 0


@pytest.fixture
def shared(postgres_url: str) -> Iterator[SharedDatabase]:
    database = SharedDatabase(postgres_url)
    yield database
    database.engine.dispose()


def balanced(shared: SharedDatabase) -> bool:
    holders = shared.holders()
    counts = Counter(holders.values())
    return len(holders) == len(PROJECTS) and all(counts[name] == 2 for name in INSTANCES)


def alerted_projects(shared: SharedDatabase, wave: int) -> bool:
    sent = shared.rows(
        "SELECT DISTINCT o.project FROM alert_outbox o JOIN alert_outbox_item i "
        "ON i.outbox_id = o.id JOIN alert a ON a.id = i.alert_id JOIN send s ON s.id = a.send_id "
        "WHERE o.sent_at IS NOT NULL AND s.negocio LIKE :wave",
        wave=f"%-{wave}",
    )
    return len(sent) == len(PROJECTS)


@pytest.mark.postgres
def test_killed_instance_loses_and_repeats_nothing(
    tmp_path: Path,
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    postgres_url: str,
    shared: SharedDatabase,
) -> None:
    users = {project: dovecot.create_user() for project in PROJECTS}
    projects = "".join(
        project_toml(
            project,
            dovecot_mailbox(dovecot, users[project]),
            f'managers = ["{MANAGER}"]\nlocale = "en"\nmissing_after = "1h"\n'
            f'[projects.send_log]\npath = "envios-{project}/*.csv"\n',
        )
        for project in PROJECTS
    )
    config = write_config(tmp_path, projects, daemon_sections(smtp_server), url=postgres_url)

    with ExitStack() as stack:
        daemons: dict[str, DaemonProcess] = {}
        for name in INSTANCES:
            # Each process gets a folder of its own for its systemd notification socket.
            (tmp_path / name).mkdir()
            daemons[name] = stack.enter_context(
                running_daemon(config, tmp_path / name, env={"ACUSE_INSTANCES__ID": name})
            )
        wait_until(lambda: balanced(shared), what="two mailboxes per instance")

        # First wave of alerts, delivered while all three instances run.
        for project in PROJECTS:
            send_log(tmp_path, project, 1)
        wait_until(lambda: alerted_projects(shared, 1), what="first alerts")

        for project in PROJECTS:
            messages = [unrelated_email(project, n) for n in range(MESSAGES_PER_MAILBOX)]
            dovecot.append(users[project], "INBOX", messages)
        victim = INSTANCES[0]
        victim_projects = [p for p, holder in shared.holders().items() if holder == victim]
        wait_until(
            lambda: any(0 < shared.stored(p) < MESSAGES_PER_MAILBOX for p in victim_projects),
            what="a poll of the victim's mailbox under way",
        )
        stored_at_kill = {project: shared.stored(project) for project in victim_projects}
        killed_at = datetime.now(UTC)
        daemons[victim].process.kill()
        daemons[victim].process.wait()

        wait_until(
            lambda: all(shared.stored(p) == MESSAGES_PER_MAILBOX for p in PROJECTS),
            what="every message stored",
        )
        takeovers = shared.rows(
            "SELECT project, holder, acquired_at FROM mailbox_lease WHERE project = ANY(:projects)",
            projects=victim_projects,
        )

        # Second wave of alerts, raised and delivered by the two survivors.
        for project in PROJECTS:
            send_log(tmp_path, project, 2)
        wait_until(lambda: alerted_projects(shared, 2), what="second alerts")
        wait_until(shared.outbox_settled, what="every alert email sent")
        # More evaluation and delivery turns must not send anything again.
        time.sleep(4)
        codes = [daemons[name].stop() for name in INSTANCES[1:]]

    assert codes == [0, 0]
    assert any(count < MESSAGES_PER_MAILBOX for count in stored_at_kill.values())
    places = shared.rows(
        "SELECT project, uid, count(*) FROM message GROUP BY project, uidvalidity, uid"
    )
    assert len(places) == len(PROJECTS) * MESSAGES_PER_MAILBOX
    assert all(count == 1 for _project, _uid, count in places)

    assert {holder for _project, holder, _at in takeovers} <= set(INSTANCES[1:])
    for _project, _holder, acquired_at in takeovers:
        assert isinstance(acquired_at, datetime)
        assert acquired_at - killed_at <= LEASE

    outbox_ids = [
        str(message_id)
        for (message_id,) in shared.rows("SELECT message_id FROM alert_outbox ORDER BY id")
    ]
    received = Counter(message.email["Message-ID"].strip() for message in smtp_server.messages)
    assert sorted(received) == sorted(outbox_ids)
    assert set(received.values()) == {1}
    raised = shared.rows(
        "SELECT alert_id, count(*) FROM alert_outbox_item WHERE event = 'raised' GROUP BY alert_id"
    )
    assert raised
    assert all(count == 1 for _alert, count in raised)
