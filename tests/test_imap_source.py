"""ImapSource against the session's real Dovecot, and against a server that never replies.

Tests that use the ``dovecot`` or ``mail_user`` fixture get the ``dovecot`` mark from the plugin.
"""

import logging
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings, project_view
from config.types import Security
from monitor.imap_source import FetchedMessage, ImapSource
from monitor.source_errors import (
    FolderNotFound,
    LoginFailed,
    MailboxTimeout,
    MailboxUnreachable,
    TlsFailed,
)
from tests.dovecot import DovecotServer, MailUser

PROJECT = "TDP2"
SourceFactory = Callable[..., ImapSource]


def evidence_message(number: int) -> bytes:
    """An invented provider message whose bytes differ for each ``number``."""
    return (
        f"From: Certificados <certificados@lleida.example>\r\n"
        f"To: evidencias-tdp2@constructora.example\r\n"
        f"Subject: Certificado {number:04d} - Estado de cuenta\r\n"
        f"Message-ID: <cert-{number:04d}@lleida.example>\r\n"
        f"Date: Mon, 03 Mar 2025 10:{number % 60:02d}:00 -0500\r\n"
        f"\r\n"
        f"Evidencia de entrega numero {number}.\r\n"
    ).encode()


def flatten(batches: Iterator[list[FetchedMessage]]) -> list[FetchedMessage]:
    return [message for batch in batches for message in batch]


@pytest.fixture
def make_source(dovecot: DovecotServer, mail_user: MailUser) -> SourceFactory:
    """Build an ImapSource for ``mail_user``; keyword arguments adjust the mailbox."""

    def build(
        *,
        security: Security = Security.PLAIN,
        folder: str = "INBOX",
        password: str | None = None,
        timeout: timedelta = timedelta(seconds=10),
        fetch_batch: int = 100,
        **overrides: Any,
    ) -> ImapSource:
        mailbox = dovecot.mailbox_settings(mail_user, security=security, folder=folder, **overrides)
        return ImapSource(
            PROJECT,
            mailbox,
            password or mail_user.password,
            timeout=timeout,
            fetch_batch=fetch_batch,
        )

    return build


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener accepts TCP connections (through the backlog) but never replies."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_plain_login_examines_folder(make_source: SourceFactory) -> None:
    with make_source() as source:
        state = source.examine()

    assert state.uidvalidity > 0
    assert state.exists == 0
    assert state.uidnext == 1


def test_tls_login_examines_folder(make_source: SourceFactory) -> None:
    with make_source(security=Security.TLS) as source:
        state = source.examine()

    assert state.uidvalidity > 0


def test_starttls_login_examines_folder(make_source: SourceFactory) -> None:
    with make_source(security=Security.STARTTLS) as source:
        state = source.examine()

    assert state.uidvalidity > 0


def test_wrong_password_raises_login_failed(
    make_source: SourceFactory, mail_user: MailUser
) -> None:
    wrong_password = "wrong-" + mail_user.password
    source = make_source(password=wrong_password)

    with pytest.raises(LoginFailed) as caught:
        source.connect()

    assert wrong_password not in str(caught.value)
    assert mail_user.password not in str(caught.value)
    assert mail_user.name in str(caught.value)
    assert caught.value.project == PROJECT
    assert caught.value.host == "127.0.0.1"
    assert not source.connected


def test_unavailable_auth_raises_unreachable(
    make_source: SourceFactory, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    dovecot.break_password_lookup(mail_user)
    source = make_source()

    with pytest.raises(MailboxUnreachable) as caught:
        source.connect()

    assert "UNAVAILABLE" in str(caught.value)


def test_password_never_logged(
    make_source: SourceFactory, mail_user: MailUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_password = "wrong-" + mail_user.password

    with make_source() as source:
        source.examine()
    with pytest.raises(LoginFailed):
        make_source(password=wrong_password).connect()

    assert "LOGIN" in caplog.text
    assert mail_user.password not in caplog.text
    assert wrong_password not in caplog.text


def test_missing_folder_raises_folder_not_found(make_source: SourceFactory) -> None:
    with make_source(folder="Evidencias") as source, pytest.raises(FolderNotFound) as caught:
        source.examine()

    assert caught.value.folder == "Evidencias"
    assert "Evidencias" in str(caught.value)


def test_fetch_new_returns_appended_bytes(
    make_source: SourceFactory, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    messages = [evidence_message(number) for number in range(1, 6)]
    uids = dovecot.append(mail_user, "INBOX", messages)

    with make_source() as source:
        source.examine()
        fetched = flatten(source.fetch_new(0))

    assert [message.uid for message in fetched] == uids
    assert [message.raw for message in fetched] == messages


def test_fetch_new_reads_named_folder(
    make_source: SourceFactory, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    dovecot.create_folder(mail_user, "Evidencias")
    dovecot.append(mail_user, "INBOX", [evidence_message(1)])
    dovecot.append(mail_user, "Evidencias", [evidence_message(2)])

    with make_source(folder="Evidencias") as source:
        source.examine()
        fetched = flatten(source.fetch_new(0))

    assert [message.raw for message in fetched] == [evidence_message(2)]


def test_fetch_new_yields_batches(
    make_source: SourceFactory, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    dovecot.append(mail_user, "INBOX", [evidence_message(number) for number in range(5)])

    with make_source(fetch_batch=2) as source:
        source.examine()
        batches = list(source.fetch_new(0))

    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert [message.uid for batch in batches for message in batch] == [1, 2, 3, 4, 5]


def test_fetch_new_skips_uids_up_to_cursor(
    make_source: SourceFactory, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    messages = [evidence_message(number) for number in range(5)]
    dovecot.append(mail_user, "INBOX", messages)

    with make_source() as source:
        source.examine()
        fetched = flatten(source.fetch_new(3))

    assert [message.uid for message in fetched] == [4, 5]
    assert [message.raw for message in fetched] == messages[3:]


@pytest.mark.parametrize("after_uid", [3, 4, 100])
def test_fetch_new_past_highest_uid_is_empty(
    make_source: SourceFactory, dovecot: DovecotServer, mail_user: MailUser, after_uid: int
) -> None:
    # UID SEARCH n:* still matches the highest UID (3) when n is above it.
    dovecot.append(mail_user, "INBOX", [evidence_message(number) for number in range(3)])

    with make_source() as source:
        source.examine()
        fetched = flatten(source.fetch_new(after_uid))

    assert fetched == []


def test_fetch_new_on_empty_folder_is_empty(make_source: SourceFactory) -> None:
    with make_source() as source:
        source.examine()
        fetched = flatten(source.fetch_new(0))

    assert fetched == []


def test_fetch_keeps_flags_unchanged(
    make_source: SourceFactory, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    dovecot.append(mail_user, "INBOX", [evidence_message(1)], flags=(b"\\Seen",))
    dovecot.append(mail_user, "INBOX", [evidence_message(2), evidence_message(3)])
    before = dovecot.flags(mail_user, "INBOX")

    with make_source() as source:
        source.examine()
        flatten(source.fetch_new(0))
    after = dovecot.flags(mail_user, "INBOX")

    assert after == before
    assert b"\\Seen" not in after[2]
    assert b"\\Seen" not in after[3]


def test_fetch_new_skips_expunged_message(
    make_source: SourceFactory, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    messages = [evidence_message(number) for number in range(3)]
    dovecot.append(mail_user, "INBOX", messages)

    with make_source() as source:
        source.examine()
        batches = source.fetch_new(0)
        dovecot.expunge(mail_user, "INBOX", [2])
        fetched = flatten(batches)

    assert [message.uid for message in fetched] == [1, 3]
    assert [message.raw for message in fetched] == [messages[0], messages[2]]


def test_fetch_new_requires_examine(make_source: SourceFactory) -> None:
    with make_source() as source, pytest.raises(RuntimeError):
        source.fetch_new(0)


def test_fetch_new_rejects_negative_uid(make_source: SourceFactory) -> None:
    with make_source() as source:
        source.examine()

        with pytest.raises(ValueError, match="after_uid"):
            source.fetch_new(-1)


def test_uidvalidity_change_is_visible(
    make_source: SourceFactory, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    dovecot.append(mail_user, "INBOX", [evidence_message(1)])
    with make_source() as source:
        before = source.examine()

    changed = dovecot.change_uidvalidity(mail_user, "INBOX")
    with make_source() as source:
        after = source.examine()

    assert after.uidvalidity == changed
    assert after.uidvalidity != before.uidvalidity
    assert after.exists == before.exists


def test_check_logs_out(make_source: SourceFactory) -> None:
    source = make_source()

    state = source.check()

    assert state.exists == 0
    assert not source.connected


def test_connect_reuses_open_connection(make_source: SourceFactory) -> None:
    with make_source() as source:
        first_state = source.examine()
        source.connect()

        assert source.folder_state == first_state


def test_close_then_connect_opens_new_connection(make_source: SourceFactory) -> None:
    source = make_source()
    source.connect()
    source.close()

    source.connect()
    state = source.examine()
    source.close()

    assert state.uidvalidity > 0


def test_untrusted_certificate_raises_tls_failed(make_source: SourceFactory) -> None:
    source = make_source(security=Security.TLS, ca_file=None)

    with pytest.raises(TlsFailed) as caught:
        source.connect()

    assert "mailbox.ca_file" in str(caught.value)
    assert "certificate" in str(caught.value)
    assert not source.connected


def test_closed_port_raises_unreachable(make_source: SourceFactory) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    source = make_source(port=closed_port)

    with pytest.raises(MailboxUnreachable) as caught:
        source.connect()

    assert str(closed_port) in str(caught.value)


@pytest.mark.parametrize("security", [Security.PLAIN, Security.TLS])
def test_silent_server_raises_timeout(
    make_source: SourceFactory, silent_port: int, security: Security
) -> None:
    source = make_source(security=security, port=silent_port, timeout=timedelta(milliseconds=300))

    with pytest.raises(MailboxTimeout) as caught:
        source.connect()

    assert "0.3 seconds" in str(caught.value)
    assert caught.value.port == silent_port


def test_for_project_resolves_ca_file(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    project = {
        "code": PROJECT,
        "name": "Torres del Parque Etapa 2",
        "mailbox": {
            "host": "imap.constructora.example",
            "username": "evidencias-tdp2@constructora.example",
            "password_file": "tdp2-imap",
            "ca_file": "ca.pem",
            "timeout": "45s",
        },
    }
    settings = make_settings(projects=[project], defaults={"fetch_batch": 25})

    source = ImapSource.for_project(settings, project_view(settings, PROJECT), "invented-pw")

    assert source.mailbox.ca_file == tmp_path / "ca.pem"
    assert source.project == PROJECT
