"""Access tokens for the mailboxes that sign in with OAuth2: obtained, cached and renewed.

Each mailbox gets one AccessTokenSource for the life of the process (``token_sources``), so a
daemon that polls every few minutes requests a token about once per token lifetime. A
cached token is renewed once it is within REFRESH_MARGIN of its expiry (at most half of its
lifetime), so a login never presents a token that is about to expire.

Token requests are plain HTTPS form POSTs made with the standard library (``oauth2_endpoint``),
not MSAL or google-auth, for these reasons:

- Each flow is one POST with the standard fields (RFC 6749 4.4 and 6, RFC 7523 2.1). The only
  dependency it adds is PyJWT with cryptography, which signs the service-account assertion.
- MSAL keeps refresh tokens in its own cache and does not hand back a rotated one, so it could
  not be written back to the operator's file. MSAL also takes an authority rather than a token
  URL: it reads OpenID metadata from the authority and checks an unknown authority with
  Microsoft's instance discovery unless validation is off, so a test endpoint on 127.0.0.1
  could not stand in for Microsoft Entra.
- google-auth serves only Google and brings its own HTTP transport and error types.
- One code path gives every provider the same TLS policy (https, or http on loopback only),
  the same error messages (the provider's error code and the fix) and the same log redaction.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from config.database import utcnow
from config.mailbox_settings import MailboxSettings
from config.settings import Settings
from monitor.oauth2_endpoint import EndpointSettings, TokenEndpoint, TokenResponse
from monitor.oauth2_flows import ExpiringSecrets, TokenFlow, flow_for_mailbox

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
REFRESH_MARGIN = timedelta(minutes=5)
# Google issues tokens for one hour and Microsoft Entra for 60 to 90 minutes, so one hour is
# assumed when a reply omits expires_in.
DEFAULT_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and the times it was obtained and expires (aware, UTC)."""

    value: str = field(repr=False)
    obtained_at: datetime
    expires_at: datetime

    @property
    def lifetime(self) -> timedelta:
        """How long the token was valid for when it was obtained."""
        return self.expires_at - self.obtained_at

    def usable_at(self, now: datetime) -> bool:
        """Return whether the token is far enough from its expiry at ``now`` to sign in with."""
        margin = min(REFRESH_MARGIN, self.lifetime / 2)
        return now < self.expires_at - margin


class AccessTokenSource:
    """The access tokens of one mailbox: one cached token, renewed before it expires.

    Methods are safe to call from several threads; token requests are made one at a time.
    """

    def __init__(
        self, project: str, flow: TokenFlow, endpoint: TokenEndpoint, *, clock: Clock = utcnow
    ) -> None:
        self.project = project
        self.flow = flow
        self.endpoint = endpoint
        self._clock = clock
        self._token: AccessToken | None = None
        self._redacted = ExpiringSecrets()
        self._lock = threading.Lock()

    @property
    def token_url(self) -> str:
        """The token endpoint's URL."""
        return self.endpoint.url

    def cached_token(self) -> AccessToken | None:
        """Return the cached token when it is still usable, without any request."""
        with self._lock:
            token = self._token
        if token is None or not token.usable_at(self._clock()):
            return None
        return token

    def token(self) -> AccessToken:
        """Return the cached token, or obtain a new one when it is missing or about to expire.

        Raises an OAuth2Error subclass when the token endpoint fails, or SecretError when a
        secret file cannot be read.
        """
        with self._lock:
            if self._token is not None and self._token.usable_at(self._clock()):
                return self._token
            return self._request_token()

    def renew(self) -> AccessToken:
        """Obtain a new token even when the cached one is usable, and cache it."""
        with self._lock:
            return self._request_token()

    def discard(self, token: AccessToken) -> None:
        """Forget ``token`` because a server rejected it, unless a newer token replaced it."""
        with self._lock:
            if self._token is token:
                self._token = None

    def _request_token(self) -> AccessToken:
        now = self._clock()
        fields = self.flow.request_fields(now)
        response = self.endpoint.request_token(fields)
        token = _access_token(response, now)
        self._redacted.register(token.value, token.expires_at, now)
        self.flow.accept(response)
        self._token = token
        logger.info(
            "Access token obtained",
            extra={
                "project": self.project,
                "flow": self.flow.flow.value,
                "token_url": self.token_url,
                "expires_in": int(self._token.lifetime.total_seconds()),
            },
        )
        return self._token


def _access_token(response: TokenResponse, obtained_at: datetime) -> AccessToken:
    lifetime = DEFAULT_LIFETIME
    if response.expires_in is not None:
        lifetime = timedelta(seconds=response.expires_in)
    return AccessToken(response.access_token, obtained_at, obtained_at + lifetime)


def build_token_source(
    settings: Settings,
    project: str,
    mailbox: MailboxSettings,
    timeout: timedelta,
    *,
    clock: Clock = utcnow,
) -> AccessTokenSource:
    """Build the token source of ``project``'s mailbox from its ``[oauth2]`` table."""
    oauth2 = mailbox.oauth2
    if oauth2 is None:
        message = f"the mailbox of project {project} does not sign in with OAuth2"
        raise ValueError(message)

    endpoint = TokenEndpoint(
        EndpointSettings(
            url=oauth2.effective_token_url,
            project=project,
            flow=oauth2.flow,
            provider=oauth2.effective_provider,
            scope=oauth2.effective_scope,
            ca_file=None if oauth2.ca_file is None else settings.resolve_path(oauth2.ca_file),
            timeout=timeout,
        )
    )
    flow = flow_for_mailbox(settings, project, mailbox)
    return AccessTokenSource(project, flow, endpoint, clock=clock)


class TokenSources:
    """The token sources of a process, one per project and mailbox configuration.

    A source is kept as long as the process runs, so its cached token serves every poll. A
    changed ``[oauth2]`` table, username or configuration folder gets a new source.
    """

    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock
        self._sources: dict[tuple[object, ...], AccessTokenSource] = {}
        self._lock = threading.Lock()

    def for_mailbox(
        self, settings: Settings, project: str, mailbox: MailboxSettings, timeout: timedelta
    ) -> AccessTokenSource:
        """Return the token source of ``project``'s mailbox, built on first use."""
        key = (project, mailbox.username, mailbox.oauth2, settings.config_dir, timeout)
        with self._lock:
            source = self._sources.get(key)
            if source is None:
                source = build_token_source(settings, project, mailbox, timeout, clock=self._clock)
                self._sources[key] = source
            return source

    def clear(self) -> None:
        """Forget every source and its cached token."""
        with self._lock:
            self._sources.clear()


token_sources = TokenSources()
