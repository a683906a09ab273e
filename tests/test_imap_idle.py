"""IMAP IDLE and aborts on ImapSource, against the session's real Dovecot."""

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from monitor.imap_source import ImapSource
from monitor.source_errors import MailboxError
from tests.dovecot import DovecotServer, MailUser
from tests.test_imap_source import evidence_message

LONG_WAIT = timedelta(seconds=30)


@pytest.fixture
def source(dovecot: DovecotServer, mail_user: MailUser) -> Iterator[ImapSource]:
    mailbox = dovecot.mailbox_settings(mail_user)
    imap = ImapSource(
        "TDP2", mailbox, mail_user.password, timeout=timedelta(seconds=10), fetch_batch=100
    )
    imap.connect()
    imap.examine()
    yield imap
    imap.close()


def append_later(dovecot: DovecotServer, user: MailUser, delay: float) -> threading.Thread:
    def append() -> None:
        time.sleep(delay)
        dovecot.append(user, "INBOX", [evidence_message(1)])

    thread = threading.Thread(target=append)
    thread.start()
    return thread


def test_server_offers_idle(source: ImapSource) -> None:
    assert source.supports_idle()


def test_idle_returns_on_new_message(
    source: ImapSource, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    appender = append_later(dovecot, mail_user, 0.5)

    announced = source.idle_wait(LONG_WAIT, threading.Event())
    appender.join()

    assert announced
    assert source.examine().exists == 1


def test_idle_times_out_quietly(source: ImapSource) -> None:
    announced = source.idle_wait(timedelta(seconds=1.5), threading.Event())

    assert not announced
    assert source.connected


def test_idle_can_run_commands_after(source: ImapSource) -> None:
    source.idle_wait(timedelta(seconds=1), threading.Event())

    state = source.examine()

    assert state.exists == 0


def test_stop_ends_idle(source: ImapSource) -> None:
    stop = threading.Event()
    stop.set()

    announced = source.idle_wait(LONG_WAIT, stop)

    assert not announced
    assert source.connected


def test_idle_before_examine_rejected(dovecot: DovecotServer, mail_user: MailUser) -> None:
    mailbox = dovecot.mailbox_settings(mail_user)
    imap = ImapSource(
        "TDP2", mailbox, mail_user.password, timeout=timedelta(seconds=10), fetch_batch=100
    )

    with pytest.raises(RuntimeError, match="examine"):
        imap.idle_wait(LONG_WAIT, threading.Event())


def test_abort_fails_blocked_idle(source: ImapSource) -> None:
    aborter = threading.Timer(0.5, source.abort)
    aborter.start()

    with pytest.raises(MailboxError):
        source.idle_wait(LONG_WAIT, threading.Event())
    aborter.join()

    assert not source.connected


def test_closed_connection_ends_idle(
    source: ImapSource, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    # doveadm kick ends the user's sessions, as a server restart or an idle cut-off would.
    kicker = threading.Timer(0.5, lambda: dovecot._doveadm("kick", mail_user.name))
    kicker.start()

    with pytest.raises(MailboxError):
        source.idle_wait(LONG_WAIT, threading.Event())
    kicker.join()

    assert not source.connected
