"""AccessTokenSource: the cached token, its renewal ahead of expiry, and the process registry."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.logs import redact
from config.mailbox_settings import MailboxSettings
from config.settings import Settings
from monitor.oauth2 import AccessTokenSource, TokenSources, build_token_source
from monitor.oauth2_errors import TokenRequestRejected
from tests.oauth2_provider import (
    AppRegistration,
    IdentityProvider,
    client_credentials_table,
    oauth2_project,
)

MAILBOX = "evidencias-tdp2@constructora.example"
START = datetime(2026, 11, 3, 15, 0, tzinfo=UTC)


class Clock:
    """A clock that moves only when the test advances it."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def client(oauth2_provider: IdentityProvider) -> AppRegistration:
    return oauth2_provider.add_client(MAILBOX)


@pytest.fixture
def settings(
    oauth2_provider: IdentityProvider,
    client: AppRegistration,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
) -> Settings:
    table = client_credentials_table(oauth2_provider, tmp_path, client)
    return make_settings(projects=[oauth2_project(MAILBOX, table)])


def mailbox_of(settings: Settings) -> MailboxSettings:
    mailbox = settings.projects[0].mailbox
    assert mailbox is not None
    return mailbox


def source_with_clock(settings: Settings, clock: Clock) -> AccessTokenSource:
    return build_token_source(
        settings, "TDP2", mailbox_of(settings), timedelta(seconds=10), clock=clock
    )


def test_cached_token_reused(oauth2_provider: IdentityProvider, settings: Settings) -> None:
    source = source_with_clock(settings, Clock())

    first = source.token()
    second = source.token()

    assert second is first
    assert len(oauth2_provider.token_requests()) == 1


def test_token_renewed_ahead_of_expiry(
    oauth2_provider: IdentityProvider, settings: Settings
) -> None:
    clock = Clock()
    source = source_with_clock(settings, clock)

    first = source.token()
    clock.advance(59)
    still_cached = source.cached_token()
    clock.advance(2)
    renewed = source.token()

    assert first.lifetime == timedelta(seconds=120)
    assert still_cached is first
    assert renewed is not first
    assert renewed.obtained_at == START + timedelta(seconds=61)
    assert len(oauth2_provider.token_requests()) == 2


def test_long_token_renewed_five_minutes_early(
    oauth2_provider: IdentityProvider, settings: Settings
) -> None:
    oauth2_provider.set_lifetime(3600)
    clock = Clock()
    source = source_with_clock(settings, clock)
    source.token()

    clock.advance(3600 - 301)
    before_margin = source.cached_token()
    clock.advance(2)
    inside_margin = source.cached_token()

    assert before_margin is not None
    assert inside_margin is None


def test_renew_ignores_cache(oauth2_provider: IdentityProvider, settings: Settings) -> None:
    source = source_with_clock(settings, Clock())
    first = source.token()

    renewed = source.renew()

    assert renewed.value != first.value
    assert source.token() is renewed


def test_discard_forgets_token(oauth2_provider: IdentityProvider, settings: Settings) -> None:
    source = source_with_clock(settings, Clock())
    first = source.token()

    source.discard(first)

    assert source.cached_token() is None
    assert source.token() is not first


def test_discard_keeps_newer_token(oauth2_provider: IdentityProvider, settings: Settings) -> None:
    source = source_with_clock(settings, Clock())
    first = source.token()
    newer = source.renew()

    source.discard(first)

    assert source.cached_token() is newer


def test_failed_request_caches_nothing(
    oauth2_provider: IdentityProvider, client: AppRegistration, settings: Settings
) -> None:
    source = source_with_clock(settings, Clock())
    oauth2_provider.revoke_client(client)

    with pytest.raises(TokenRequestRejected):
        source.token()

    assert source.cached_token() is None


def test_token_and_secret_redacted(
    oauth2_provider: IdentityProvider, client: AppRegistration, settings: Settings
) -> None:
    token = source_with_clock(settings, Clock()).token()

    line = redact(f"token={token.value} secret={client.secret}")

    assert line == "token=*** secret=***"


def test_expired_token_no_longer_redacted(
    oauth2_provider: IdentityProvider, settings: Settings
) -> None:
    clock = Clock()
    source = source_with_clock(settings, clock)
    expired = source.token()
    clock.advance(121)

    current = source.token()

    assert redact(expired.value) == expired.value
    assert redact(current.value) == "***"


def test_registry_keeps_one_source_per_mailbox(settings: Settings) -> None:
    sources = TokenSources()
    mailbox = mailbox_of(settings)

    first = sources.for_mailbox(settings, "TDP2", mailbox, timedelta(seconds=10))
    second = sources.for_mailbox(settings, "TDP2", mailbox, timedelta(seconds=10))

    assert second is first


def test_registry_rebuilds_changed_mailbox(settings: Settings) -> None:
    sources = TokenSources()
    mailbox = mailbox_of(settings)
    assert mailbox.oauth2 is not None
    changed_table: dict[str, Any] = {"scope": "https://outlook.office365.com/.default openid"}
    changed = mailbox.model_copy(update={"oauth2": mailbox.oauth2.model_copy(update=changed_table)})

    first = sources.for_mailbox(settings, "TDP2", mailbox, timedelta(seconds=10))
    second = sources.for_mailbox(settings, "TDP2", changed, timedelta(seconds=10))

    assert second is not first
