"""Settings of an IMAP evidence mailbox: server, security, and password or OAuth2 sign-in."""

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from config.i18n import N_, _
from config.types import (
    Duration,
    EmailAddress,
    Integer,
    Section,
    Security,
    duration_range,
    is_loopback_host,
    require_text,
)

MAX_IDLE_RENEW = timedelta(minutes=29)


class OAuth2Flow(StrEnum):
    """The OAuth2 grant that obtains a mailbox's access tokens."""

    CLIENT_CREDENTIALS = "client_credentials"
    REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant name, not a secret
    SERVICE_ACCOUNT = "service_account"


class OAuth2Provider(StrEnum):
    """The identity platform whose token endpoint and scope are the defaults."""

    MICROSOFT = "microsoft"
    GOOGLE = "google"


class SaslMechanism(StrEnum):
    """The SASL mechanism that carries the access token; ``auto`` picks one the server offers."""

    AUTO = "auto"
    XOAUTH2 = "xoauth2"
    OAUTHBEARER = "oauthbearer"


# URLs, not secrets.


# URLs, not secrets.
MICROSOFT_TOKEN_URL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"  # noqa: S105


MICROSOFT_DELEGATED_TENANT = "organizations"


GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105


OAUTH2_DEFAULT_SCOPES = {
    (OAuth2Flow.CLIENT_CREDENTIALS, OAuth2Provider.MICROSOFT): (
        "https://outlook.office365.com/.default"
    ),
    (OAuth2Flow.REFRESH_TOKEN, OAuth2Provider.MICROSOFT): (
        "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
    ),
    (OAuth2Flow.SERVICE_ACCOUNT, OAuth2Provider.GOOGLE): "https://mail.google.com/",
}


_FLOW_PROVIDERS = {
    OAuth2Flow.CLIENT_CREDENTIALS: OAuth2Provider.MICROSOFT,
    OAuth2Flow.SERVICE_ACCOUNT: OAuth2Provider.GOOGLE,
}


_OAUTH2_REQUIRED_KEYS = {
    OAuth2Flow.CLIENT_CREDENTIALS: ("client_id", "client_secret_file"),
    OAuth2Flow.REFRESH_TOKEN: ("client_id", "refresh_token_file"),
    OAuth2Flow.SERVICE_ACCOUNT: ("key_file",),
}


_OAUTH2_UNUSED_KEYS = {
    OAuth2Flow.CLIENT_CREDENTIALS: ("refresh_token_file", "key_file", "subject"),
    OAuth2Flow.REFRESH_TOKEN: ("key_file", "subject"),
    OAuth2Flow.SERVICE_ACCOUNT: ("tenant", "client_id", "client_secret_file", "refresh_token_file"),
}


_OAUTH2_KEY_HINTS = {
    "client_id": N_("the application (client) ID that the identity platform gave the app"),
    "client_secret_file": N_("the file that contains the client secret"),
    "refresh_token_file": N_("the file that contains the refresh token"),
    "key_file": N_("the service account's JSON key file"),
    "tenant": N_("the Microsoft Entra tenant ID or primary domain"),
}


def _check_token_url(value: Any) -> str | None:
    if value is None:
        return None
    text = require_text(value)
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        message = _("invalid token_url {value!r}: write an https:// URL").format(value=value)
        raise ValueError(message)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        message = _(
            "token_url {value!r} uses plain http, which is allowed only towards a loopback "
            "address: use https"
        ).format(value=value)
        raise ValueError(message)
    return text


class OAuth2Settings(Section):
    """The token flow and endpoint of a mailbox that signs in with OAuth2.

    Secrets (client secret, refresh token, service-account key) are files, read like
    ``password_file``. ``provider``, ``scope`` and ``token_url`` default from the flow.
    """

    flow: OAuth2Flow
    provider: OAuth2Provider | None = None
    tenant: str | None = None
    client_id: str | None = None
    client_secret_file: str | None = None
    refresh_token_file: str | None = None
    key_file: str | None = None
    subject: EmailAddress | None = None
    scope: str | None = None
    token_url: Annotated[str | None, BeforeValidator(_check_token_url)] = None
    ca_file: Path | None = None
    mechanism: SaslMechanism = SaslMechanism.AUTO

    @model_validator(mode="after")
    def _keys_match_flow(self) -> "OAuth2Settings":
        flow = self.flow.value
        for key in _OAUTH2_REQUIRED_KEYS[self.flow]:
            if getattr(self, key) is None:
                message = _('{key} is required when flow = "{flow}": add it with {hint}').format(
                    key=key, flow=flow, hint=_(_OAUTH2_KEY_HINTS[key])
                )
                raise ValueError(message)
        for key in _OAUTH2_UNUSED_KEYS[self.flow]:
            if getattr(self, key) is not None:
                message = _(
                    '{key} is not used when flow = "{flow}": remove it or change the flow'
                ).format(key=key, flow=flow)
                raise ValueError(message)
        return self

    @model_validator(mode="after")
    def _provider_matches_flow(self) -> "OAuth2Settings":
        expected = _FLOW_PROVIDERS.get(self.flow)
        if expected is not None and self.provider not in (None, expected):
            message = _(
                'flow = "{flow}" works only with provider = "{provider}": '
                "use client_credentials for Microsoft 365 and service_account for Google Workspace"
            ).format(flow=self.flow.value, provider=expected.value)
            raise ValueError(message)
        if self.token_url is None and self.effective_provider is None:
            message = _(
                'flow = "refresh_token" needs provider = "microsoft" or "google", or a '
                "token_url: add one to choose the token endpoint"
            )
            raise ValueError(message)
        needs_tenant = self.flow is OAuth2Flow.CLIENT_CREDENTIALS and self.token_url is None
        if needs_tenant and self.tenant is None:
            message = _(
                'tenant is required when flow = "client_credentials": add it with {hint}'
            ).format(hint=_(_OAUTH2_KEY_HINTS["tenant"]))
            raise ValueError(message)
        return self

    @property
    def effective_provider(self) -> OAuth2Provider | None:
        """The configured provider, or the only one the flow works with."""
        return self.provider or _FLOW_PROVIDERS.get(self.flow)

    @property
    def effective_scope(self) -> str | None:
        """The configured scope, or the provider's default for the flow (None: send no scope)."""
        provider = self.effective_provider
        if self.scope is not None or provider is None:
            return self.scope
        return OAUTH2_DEFAULT_SCOPES.get((self.flow, provider))

    @property
    def effective_token_url(self) -> str:
        """The configured token endpoint, or the provider's."""
        if self.token_url is not None:
            return self.token_url
        if self.effective_provider is OAuth2Provider.GOOGLE:
            return GOOGLE_TOKEN_URL
        tenant = self.tenant or MICROSOFT_DELEGATED_TENANT
        return MICROSOFT_TOKEN_URL.format(tenant=quote(tenant, safe=""))


class MailboxAuth(StrEnum):
    """The sign-in method of a mailbox."""

    PASSWORD = "password"  # noqa: S105 - a method name, not a secret
    OAUTH2 = "oauth2"


class MailboxSettings(Section):
    """The IMAP mailbox and folder where the provider's evidence for one project arrives."""

    host: str
    port: Integer | None = Field(default=None, ge=1, le=65535)
    security: Security = Security.TLS
    username: str
    auth: MailboxAuth = MailboxAuth.PASSWORD
    password_file: str | None = None
    oauth2: OAuth2Settings | None = None
    folder: str = "INBOX"
    timeout: Annotated[Duration, duration_range("1s", "1h")] | None = None
    ca_file: Path | None = None
    idle: bool = False
    idle_renew: Duration = timedelta(minutes=10)

    @field_validator("idle_renew")
    @classmethod
    def _renew_before_server_limit(cls, value: timedelta) -> timedelta:
        # RFC 2177 lets a server end an IDLE after 30 minutes of inactivity; renew well before.
        if not timedelta(seconds=1) <= value <= MAX_IDLE_RENEW:
            message = _(
                "idle_renew {value} is outside 1s to {limit}: servers may end an IDLE "
                "after 30 minutes, so renew it sooner, for example every 10m"
            ).format(value=value, limit=MAX_IDLE_RENEW)
            raise ValueError(message)
        return value

    @model_validator(mode="after")
    def _plain_only_on_loopback(self) -> "MailboxSettings":
        if self.security is Security.PLAIN and not is_loopback_host(self.host):
            message = _(
                'security = "plain" sends the password unencrypted, so it is allowed only towards '
                'a loopback address, not {host!r}: use "tls" or "starttls"'
            ).format(host=self.host)
            raise ValueError(message)
        return self

    @model_validator(mode="after")
    def _credentials_match_auth(self) -> "MailboxSettings":
        if self.auth is MailboxAuth.PASSWORD and self.password_file is None:
            message = _(
                'password_file is required when auth = "password": name the file that contains '
                'the mailbox password, or set auth = "oauth2"'
            )
            raise ValueError(message)
        if self.auth is MailboxAuth.OAUTH2 and self.oauth2 is None:
            message = _(
                'auth = "oauth2" needs a [projects.mailbox.oauth2] table with the flow and its '
                "settings: add it"
            )
            raise ValueError(message)
        if self.auth is MailboxAuth.PASSWORD and self.oauth2 is not None:
            message = _(
                '[projects.mailbox.oauth2] is set but auth = "password": set auth = "oauth2" to '
                "sign in with OAuth2, or remove the table"
            )
            raise ValueError(message)
        return self

    @property
    def effective_port(self) -> int:
        """The configured port, or the standard one for the security mode."""
        if self.port is not None:
            return self.port
        return 993 if self.security is Security.TLS else 143
