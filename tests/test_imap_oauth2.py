"""ImapSource signing in with OAuth2 tokens to a real Dovecot, and polls that store the evidence.

Dovecot's ``oauth2`` passdb checks each token with the test identity platform's introspection
endpoint, so a token that the platform expired or revoked is rejected as a real server would.
"""

import base64
import io
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from acuse.demo import SAMPLES_DIR
from config.database import Database
from config.logs import JsonFormatter
from config.settings import Settings, project_view
from config.types import Security
from monitor.archive import Archive
from monitor.imap_source import ImapSource
from monitor.mailbox_poll import poll_mailbox
from monitor.oauth2 import AccessTokenSource, build_token_source
from monitor.oauth2_errors import TokenRequestRejected
from monitor.source_errors import LoginFailed
from tests.dovecot import DovecotServer, MailUser
from tests.oauth2_provider import (
    IdentityProvider,
    client_credentials_table,
    oauth2_project,
    refresh_token_table,
    service_account_table,
)

PROJECT = "TDP2"


class Clock:
    """A clock that moves only when the test advances it.

    It starts at the real time, because the identity platform checks the times in a
    service-account assertion against its own clock.
    """

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class OAuth2Mailbox:
    """A project whose mailbox is a user of the OAuth2 Dovecot, and its token source."""

    settings: Settings
    tokens: AccessTokenSource
    clock: Clock
    server: DovecotServer
    user: MailUser

    def append(self, messages: list[bytes]) -> None:
        """APPEND ``messages`` to the mailbox's INBOX."""
        self.server.append(self.user, "INBOX", messages)

    def source(self) -> ImapSource:
        """Return a new ImapSource for the mailbox that shares the token source."""
        mailbox = self.settings.projects[0].mailbox
        assert mailbox is not None
        if mailbox.ca_file is not None:
            mailbox = mailbox.model_copy(
                update={"ca_file": self.settings.resolve_path(mailbox.ca_file)}
            )
        return ImapSource(
            PROJECT,
            mailbox,
            None,
            timeout=timedelta(seconds=10),
            fetch_batch=100,
            tokens=self.tokens,
        )


MailboxFactory = Callable[..., OAuth2Mailbox]


@pytest.fixture
def make_mailbox(
    dovecot_oauth2: DovecotServer,
    oauth2_mail_user: MailUser,
    make_settings: Callable[..., Settings],
) -> MailboxFactory:
    """Build a project whose mailbox is ``user`` (default ``oauth2_mail_user``) using ``oauth2``."""

    def build(
        oauth2: dict[str, Any], *, user: MailUser | None = None, **mailbox: Any
    ) -> OAuth2Mailbox:
        fields: dict[str, Any] = {"port": dovecot_oauth2.imap_port, **mailbox}
        user = user or oauth2_mail_user
        project = oauth2_project(user.name, oauth2, **fields)
        settings = make_settings(projects=[project])
        mailbox_settings = settings.projects[0].mailbox
        assert mailbox_settings is not None
        clock = Clock()
        tokens = build_token_source(
            settings, PROJECT, mailbox_settings, timedelta(seconds=10), clock=clock
        )
        return OAuth2Mailbox(settings, tokens, clock, dovecot_oauth2, user)

    return build


@pytest.fixture
def app_mailbox(
    oauth2_provider: IdentityProvider,
    oauth2_mail_user: MailUser,
    tmp_path: Path,
    make_mailbox: MailboxFactory,
) -> OAuth2Mailbox:
    """A mailbox that an app with client credentials may read."""
    client = oauth2_provider.add_client(oauth2_mail_user.name)
    return make_mailbox(client_credentials_table(oauth2_provider, tmp_path, client))


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Every log line at DEBUG, the IMAP wire trace included, as acuse formats it in JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in ("imapclient", "monitor"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous_level)
    for name in ("imapclient", "monitor"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def sample_messages() -> list[bytes]:
    return [path.read_bytes() for path in sorted((SAMPLES_DIR / "evidencias").glob("*.eml"))]


def test_xoauth2_login_examines_folder(
    oauth2_provider: IdentityProvider, app_mailbox: OAuth2Mailbox
) -> None:
    source = app_mailbox.source()

    with source:
        state = source.examine()

    assert state.uidvalidity > 0
    assert source.login_mechanism == "XOAUTH2"
    assert oauth2_provider.introspected_tokens() == oauth2_provider.issued_tokens()


def test_oauthbearer_login_examines_folder(
    oauth2_provider: IdentityProvider,
    oauth2_mail_user: MailUser,
    tmp_path: Path,
    make_mailbox: MailboxFactory,
) -> None:
    client = oauth2_provider.add_client(oauth2_mail_user.name)
    table = client_credentials_table(oauth2_provider, tmp_path, client)
    source = make_mailbox({**table, "mechanism": "oauthbearer"}).source()

    with source:
        state = source.examine()

    assert state.uidvalidity > 0
    assert source.login_mechanism == "OAUTHBEARER"


def test_xoauth2_over_tls(
    oauth2_provider: IdentityProvider,
    oauth2_mail_user: MailUser,
    dovecot_oauth2: DovecotServer,
    tmp_path: Path,
    make_mailbox: MailboxFactory,
) -> None:
    client = oauth2_provider.add_client(oauth2_mail_user.name)
    source = make_mailbox(
        client_credentials_table(oauth2_provider, tmp_path, client),
        port=dovecot_oauth2.imaps_port,
        security=Security.TLS,
        ca_file=str(dovecot_oauth2.ca_file),
    ).source()

    with source:
        state = source.examine()

    assert state.uidvalidity > 0


def test_refresh_token_login(
    oauth2_provider: IdentityProvider,
    oauth2_mail_user: MailUser,
    tmp_path: Path,
    make_mailbox: MailboxFactory,
) -> None:
    client = oauth2_provider.add_client(oauth2_mail_user.name)
    refresh_token = oauth2_provider.add_refresh_token(client)
    source = make_mailbox(
        refresh_token_table(oauth2_provider, tmp_path, client, refresh_token)
    ).source()

    with source:
        state = source.examine()

    assert state.exists == 0


def test_service_account_login(
    oauth2_provider: IdentityProvider,
    dovecot_oauth2: DovecotServer,
    tmp_path: Path,
    make_mailbox: MailboxFactory,
) -> None:
    # A Workspace mailbox is named by its address, which is also the assertion's subject.
    user = dovecot_oauth2.create_user(f"evidencias-{secrets.token_hex(3)}@constructora.example")
    key = oauth2_provider.add_service_account({user.name})
    source = make_mailbox(service_account_table(oauth2_provider, tmp_path, key), user=user).source()

    with source:
        state = source.examine()

    assert state.exists == 0
    assert source.login_mechanism == "XOAUTH2"


def test_token_for_other_mailbox_rejected(
    oauth2_provider: IdentityProvider,
    dovecot_oauth2: DovecotServer,
    tmp_path: Path,
    make_mailbox: MailboxFactory,
) -> None:
    other_user = dovecot_oauth2.create_user()
    client = oauth2_provider.add_client(other_user.name)
    source = make_mailbox(client_credentials_table(oauth2_provider, tmp_path, client)).source()

    with pytest.raises(LoginFailed) as caught:
        source.connect()

    message = str(caught.value)
    assert "rejected the AUTHENTICATE XOAUTH2 login" in message
    assert oauth2_provider.token_url in message
    assert "status=401" in message
    assert "IMAP.AccessAsApp" in message
    assert len(oauth2_provider.token_requests()) == 1
    assert not source.connected


def test_early_expiry_retried_once(
    oauth2_provider: IdentityProvider, app_mailbox: OAuth2Mailbox
) -> None:
    first = app_mailbox.tokens.token()
    oauth2_provider.expire_tokens()
    source = app_mailbox.source()

    with source:
        state = source.examine()

    issued = oauth2_provider.issued_tokens()
    assert state.uidvalidity > 0
    assert len(issued) == 2
    assert oauth2_provider.introspected_tokens() == [first.value, issued[1]]
    assert app_mailbox.tokens.cached_token() is not first


def test_retry_failure_is_token_error(
    oauth2_provider: IdentityProvider, oauth2_mail_user: MailUser, app_mailbox: OAuth2Mailbox
) -> None:
    app_mailbox.tokens.token()
    client = next(iter(oauth2_provider.state.clients.values()))
    oauth2_provider.revoke_client(client)
    source = app_mailbox.source()

    with pytest.raises(TokenRequestRejected) as caught:
        source.connect()

    assert caught.value.error_code == "unauthorized_client"
    assert len(oauth2_provider.token_requests()) == 2
    assert not source.connected


def test_clock_expiry_renews_before_login(
    oauth2_provider: IdentityProvider, app_mailbox: OAuth2Mailbox
) -> None:
    app_mailbox.tokens.token()
    app_mailbox.clock.advance(120)
    oauth2_provider.expire_tokens()
    source = app_mailbox.source()

    with source:
        source.examine()

    issued = oauth2_provider.issued_tokens()
    assert len(issued) == 2
    assert oauth2_provider.introspected_tokens() == [issued[1]]


def test_revoked_client_fails_before_login(
    oauth2_provider: IdentityProvider, app_mailbox: OAuth2Mailbox
) -> None:
    client = next(iter(oauth2_provider.state.clients.values()))
    oauth2_provider.revoke_client(client)
    source = app_mailbox.source()

    with pytest.raises(TokenRequestRejected) as caught:
        source.connect()

    assert "AADSTS700016" in str(caught.value)
    assert oauth2_provider.introspected_tokens() == []
    assert not source.connected


def test_mechanism_not_offered(
    oauth2_provider: IdentityProvider,
    dovecot: DovecotServer,
    mail_user: MailUser,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
) -> None:
    client = oauth2_provider.add_client(mail_user.name)
    table = client_credentials_table(oauth2_provider, tmp_path, client)
    settings = make_settings(
        projects=[oauth2_project(mail_user.name, table, port=dovecot.imap_port)]
    )
    source = ImapSource.for_project(settings, project_view(settings, PROJECT))

    with pytest.raises(LoginFailed) as caught:
        source.connect()

    assert "offers no OAuth2 sign-in" in str(caught.value)
    assert "LOGIN PLAIN" in str(caught.value)
    assert oauth2_provider.token_requests() == []


def test_poll_stores_evidence_with_token(
    app_mailbox: OAuth2Mailbox, database: Database, tmp_path: Path
) -> None:
    messages = sample_messages()
    app_mailbox.append(messages)
    archive = Archive(tmp_path / "archive")
    project = project_view(app_mailbox.settings, PROJECT)

    with app_mailbox.source() as source:
        result = poll_mailbox(database, archive, project, source)

    assert result.counts.seen == len(messages)
    assert result.counts.stored == len(messages)
    assert result.counts.evidence > 0
    assert len(list(archive.stored_hashes())) == len(messages)


def test_expiry_between_polls_refreshes(
    oauth2_provider: IdentityProvider,
    app_mailbox: OAuth2Mailbox,
    database: Database,
    tmp_path: Path,
) -> None:
    messages = sample_messages()
    app_mailbox.append(messages[:5])
    archive = Archive(tmp_path / "archive")
    project = project_view(app_mailbox.settings, PROJECT)
    with app_mailbox.source() as source:
        first = poll_mailbox(database, archive, project, source)
    app_mailbox.append(messages[5:])
    app_mailbox.clock.advance(121)
    oauth2_provider.expire_tokens()

    with app_mailbox.source() as source:
        second = poll_mailbox(database, archive, project, source)

    issued = oauth2_provider.issued_tokens()
    assert first.counts.stored == 5
    assert second.counts.stored == len(messages) - 5
    assert second.start_uid == 5
    assert len(issued) == 2
    assert oauth2_provider.introspected_tokens() == issued


def test_wire_trace_hides_tokens(
    oauth2_provider: IdentityProvider,
    oauth2_mail_user: MailUser,
    app_mailbox: OAuth2Mailbox,
    debug_log: io.StringIO,
) -> None:
    app_mailbox.tokens.token()
    oauth2_provider.expire_tokens()

    with app_mailbox.source() as source:
        source.examine()

    lines = debug_log.getvalue()
    client = next(iter(oauth2_provider.state.clients.values()))
    responses = [
        base64.b64encode(f"user={oauth2_mail_user.name}\x01auth=Bearer {token}\x01\x01".encode())
        for token in oauth2_provider.issued_tokens()
    ]
    assert "AUTHENTICATE" in lines
    assert "Access token rejected" in lines
    assert len(oauth2_provider.issued_tokens()) == 2
    assert [token for token in oauth2_provider.issued_tokens() if token in lines] == []
    assert [value for value in responses if value.decode() in lines] == []
    assert client.secret not in lines
