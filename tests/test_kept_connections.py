"""Polls on kept IMAP connections against the session's Dovecot: one round trip when idle,
new mail still found, and a connection the server dropped replaced without a failure.

Round trips are counted by a relaying FaultProxy: each tagged completion is one."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from acuse.polling import MailboxConnections, MailboxPoller
from config.database import Database
from config.settings import ProjectView, Settings, project_view
from monitor.archive import Archive
from monitor.mailbox_health import load_health
from tests.dovecot import DovecotServer, MailUser
from tests.tcp_proxy import FaultProxy
from tests.test_imap_source import evidence_message

Poll = Callable[[], int]


@pytest.fixture
def proxy(dovecot: DovecotServer) -> Iterator[FaultProxy]:
    with FaultProxy(dovecot.imap_port) as relay:
        yield relay


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], proxy: FaultProxy, mail_user: MailUser
) -> Settings:
    mailbox = {
        "host": "127.0.0.1",
        "port": proxy.port,
        "security": "plain",
        "username": mail_user.name,
        "password_file": str(mail_user.password_file),
        "timeout": "5s",
    }
    return make_settings(projects=[{"code": "TDP2", "name": "Torres", "mailbox": mailbox}])


@pytest.fixture
def project(settings: Settings) -> ProjectView:
    return project_view(settings, "TDP2")


@pytest.fixture
def connections() -> Iterator[MailboxConnections]:
    kept = MailboxConnections()
    yield kept
    kept.close_all()


@pytest.fixture
def poll(
    settings: Settings,
    project: ProjectView,
    database: Database,
    tmp_path: Path,
    connections: MailboxConnections,
) -> Poll:
    """Poll the project's mailbox on the kept connection; return how many messages it stored."""
    poller = MailboxPoller(settings, database, Archive(tmp_path / "archive"), connections)

    def run() -> int:
        return poller.poll_once(project).counts.stored

    return run


def round_trips(proxy: FaultProxy, action: Callable[[], object]) -> int:
    before = proxy.boundaries
    action()
    return proxy.boundaries - before


def test_idle_poll_is_one_round_trip(
    poll: Poll, proxy: FaultProxy, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    dovecot.append(mail_user, "INBOX", [evidence_message(1)])
    poll()

    idle = [round_trips(proxy, poll) for _ in range(3)]

    assert idle == [1, 1, 1]


def test_new_mail_found_on_kept_connection(
    poll: Poll, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    dovecot.append(mail_user, "INBOX", [evidence_message(1)])
    first = poll()
    idle = poll()
    dovecot.append(mail_user, "INBOX", [evidence_message(2), evidence_message(3)])

    later = poll()

    assert (first, idle, later) == (1, 0, 2)


def test_dropped_connection_is_replaced(
    poll: Poll,
    dovecot: DovecotServer,
    mail_user: MailUser,
    database: Database,
    project: ProjectView,
) -> None:
    poll()
    dovecot.kick(mail_user)
    dovecot.append(mail_user, "INBOX", [evidence_message(4)])

    stored = poll()

    assert stored == 1
    with database.session() as session:
        health = load_health(session, project.code)
    assert [record.last_error for record in health] == [None]


def test_close_all_logs_out(poll: Poll, connections: MailboxConnections, proxy: FaultProxy) -> None:
    poll()

    logout = round_trips(proxy, connections.close_all)

    assert logout == 1
    assert round_trips(proxy, poll) > 1
