"""The configuration: one TOML file, overridable by ``ACUSE_...`` environment variables.

``load_settings`` is the only entry point. It reads the file, applies environment overrides
(``ACUSE_DATABASE__URL``, ``ACUSE_DEFAULTS__LOCALE``, ...), validates every key and turns any
problem into a ConfigError that names the key and the fix.
"""

import ipaddress
import os
import re
import tomllib
from datetime import UTC, time, timedelta
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from config.crontab import crontab_trigger
from config.durations import parse_duration
from config.errors import ConfigError
from config.i18n import DEFAULT_LOCALE, _, normalize_locale

CONFIG_ENV = "ACUSE_CONFIG"
BUILTIN_PROVIDERS_DIR = Path(__file__).parent / "providers"
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_PROJECT_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
MAX_IDLE_RENEW = timedelta(minutes=29)


def _to_duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_to_duration)]


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        message = f"unknown time zone {value!r}: use an IANA name such as America/Bogota"
        raise ValueError(message) from exc
    return value


TimeZoneName = Annotated[str, BeforeValidator(_check_timezone)]


def _check_locale(value: str) -> str:
    return normalize_locale(value)


LocaleName = Annotated[str, BeforeValidator(_check_locale)]


def _check_email(value: str) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        message = f"invalid email address {value!r}: write it as name@domain.example"
        raise ValueError(message)
    return value.strip()


EmailAddress = Annotated[str, BeforeValidator(_check_email)]


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        message = f"invalid regular expression {value!r}: {exc}"
        raise ValueError(message) from exc
    return value


Regex = Annotated[str, BeforeValidator(_check_regex)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Security(StrEnum):
    """How a mail connection is protected."""

    TLS = "tls"
    STARTTLS = "starttls"
    PLAIN = "plain"


def is_loopback_host(host: str) -> bool:
    """Return whether ``host`` names this machine (``localhost`` or a loopback address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DatabaseSettings(_Section):
    """Where acuse keeps its ledger, sends and matches."""

    url: str = "sqlite:////var/lib/acuse/acuse.db"


class ArchiveSettings(_Section):
    """The folder that keeps every raw message, addressed by its SHA-256."""

    path: Path = Path("/var/lib/acuse/archive")


class Defaults(_Section):
    """Values each project inherits unless it sets its own."""

    locale: LocaleName = DEFAULT_LOCALE
    timezone: TimeZoneName = "America/Bogota"
    poll_interval: Duration = timedelta(minutes=5)
    missing_after: Duration = timedelta(hours=6)
    orphan_after: Duration = timedelta(hours=24)
    match_window_before: Duration = timedelta(minutes=15)
    match_window_after: Duration = timedelta(hours=6)
    imap_timeout: Duration = timedelta(seconds=60)
    fetch_batch: int = Field(default=100, ge=1, le=5000)
    reconcile_interval: Duration = timedelta(minutes=15)
    send_log_interval: Duration = timedelta(minutes=15)
    job_timeout: Duration = timedelta(minutes=30)


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
    "client_id": "the application (client) ID that the identity platform gave the app",
    "client_secret_file": "the file that contains the client secret",
    "refresh_token_file": "the file that contains the refresh token",
    "key_file": "the service account's JSON key file",
    "tenant": "the Microsoft Entra tenant ID or primary domain",
}


def _check_token_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        message = f"invalid token_url {value!r}: write an https:// URL"
        raise ValueError(message)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        message = (
            f"token_url {value!r} uses plain http, which is allowed only towards a loopback "
            "address: use https"
        )
        raise ValueError(message)
    return value


class OAuth2Settings(_Section):
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
                message = (
                    f'{key} is required when flow = "{flow}": add it with {_OAUTH2_KEY_HINTS[key]}'
                )
                raise ValueError(message)
        for key in _OAUTH2_UNUSED_KEYS[self.flow]:
            if getattr(self, key) is not None:
                message = f'{key} is not used when flow = "{flow}": remove it or change the flow'
                raise ValueError(message)
        return self

    @model_validator(mode="after")
    def _provider_matches_flow(self) -> "OAuth2Settings":
        expected = _FLOW_PROVIDERS.get(self.flow)
        if expected is not None and self.provider not in (None, expected):
            message = (
                f'flow = "{self.flow.value}" works only with provider = "{expected.value}": '
                "use client_credentials for Microsoft 365 and service_account for Google Workspace"
            )
            raise ValueError(message)
        if self.token_url is None and self.effective_provider is None:
            message = (
                'flow = "refresh_token" needs provider = "microsoft" or "google", or a '
                "token_url: add one to choose the token endpoint"
            )
            raise ValueError(message)
        needs_tenant = self.flow is OAuth2Flow.CLIENT_CREDENTIALS and self.token_url is None
        if needs_tenant and self.tenant is None:
            message = (
                'tenant is required when flow = "client_credentials": add it with '
                f"{_OAUTH2_KEY_HINTS['tenant']}"
            )
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


class MailboxSettings(_Section):
    """The IMAP mailbox and folder where the provider's evidence for one project arrives."""

    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = Security.TLS
    username: str
    auth: MailboxAuth = MailboxAuth.PASSWORD
    password_file: str | None = None
    oauth2: OAuth2Settings | None = None
    folder: str = "INBOX"
    timeout: Duration | None = None
    ca_file: Path | None = None
    idle: bool = False
    idle_renew: Duration = timedelta(minutes=10)

    @field_validator("idle_renew")
    @classmethod
    def _renew_before_server_limit(cls, value: timedelta) -> timedelta:
        # RFC 2177 lets a server end an IDLE after 30 minutes of inactivity; renew well before.
        if not timedelta(seconds=1) <= value <= MAX_IDLE_RENEW:
            message = (
                f"idle_renew {value} is outside 1s to {MAX_IDLE_RENEW}: servers may end an IDLE "
                "after 30 minutes, so renew it sooner, for example every 10m"
            )
            raise ValueError(message)
        return value

    @model_validator(mode="after")
    def _plain_only_on_loopback(self) -> "MailboxSettings":
        if self.security is Security.PLAIN and not is_loopback_host(self.host):
            message = (
                f'security = "plain" sends the password unencrypted, so it is allowed only towards '
                f'a loopback address, not {self.host!r}: use "tls" or "starttls"'
            )
            raise ValueError(message)
        return self

    @model_validator(mode="after")
    def _credentials_match_auth(self) -> "MailboxSettings":
        if self.auth is MailboxAuth.PASSWORD and self.password_file is None:
            message = (
                'password_file is required when auth = "password": name the file that contains '
                'the mailbox password, or set auth = "oauth2"'
            )
            raise ValueError(message)
        if self.auth is MailboxAuth.OAUTH2 and self.oauth2 is None:
            message = (
                'auth = "oauth2" needs a [projects.mailbox.oauth2] table with the flow and its '
                "settings: add it"
            )
            raise ValueError(message)
        if self.auth is MailboxAuth.PASSWORD and self.oauth2 is not None:
            message = (
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


SEND_LOG_FIELDS = (
    "notification_type",
    "negocio",
    "inmueble",
    "client",
    "recipient",
    "lleida_copied",
    "sent_at",
    "subject",
    "external_id",
    "message_id",
)


def _check_crontab(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        crontab_trigger(value, UTC)
    except ValueError as exc:
        message = (
            f"invalid cron expression {value!r}: {exc}; write five fields "
            '"minute hour day month weekday", such as "0 6 * * 1-5"'
        )
        raise ValueError(message) from exc
    return value


Crontab = Annotated[str, BeforeValidator(_check_crontab)]


class SendLogSettings(_Section):
    """Where a project's send log comes from and how its columns are named.

    ``path`` is a file or a glob of PACO exports that the daemon watches. ``url`` and ``query``
    name a database and a read-only SQL query whose result columns carry the same names as the
    export's headers. ``interval`` or ``cron`` (in the project's time zone) sets when the
    daemon reads it.
    """

    path: str | None = None
    url: str | None = None
    query: str | None = None
    password_file: str | None = None
    interval: Duration | None = None
    cron: Crontab | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    date_format: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "SendLogSettings":
        if self.path is not None and self.url is not None:
            message = "set either path (export files) or url and query (a database), not both"
            raise ValueError(message)
        if (self.url is None) != (self.query is None):
            message = "url and query go together: set both to read the send log from a database"
            raise ValueError(message)
        if self.password_file is not None and self.url is None:
            message = "password_file is the database password for url: set url and query too"
            raise ValueError(message)
        if self.interval is not None and self.cron is not None:
            message = "set either interval or cron, not both"
            raise ValueError(message)
        return self

    @property
    def watched(self) -> bool:
        """Whether the daemon imports this send log on a schedule."""
        return self.path is not None or self.url is not None

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(SEND_LOG_FIELDS))
        if unknown:
            message = (
                f"unknown send-log field {unknown[0]!r}: use one of {', '.join(SEND_LOG_FIELDS)}"
            )
            raise ValueError(message)
        return value


class AlertKind(StrEnum):
    """What an alert is about. The values are the configuration keys and stable codes."""

    CERTIFICATION_MISSING = "certification_missing"
    DELIVERY_FAILED = "delivery_failed"
    CERTIFICATION_REJECTED = "certification_rejected"
    NOT_COPIED = "not_copied"
    EVIDENCE_UNVERIFIED = "evidence_unverified"
    ORPHAN_EVIDENCE = "orphan_evidence"
    MAILBOX_UNREACHABLE = "mailbox_unreachable"
    EVIDENCE_SILENCE = "evidence_silence"
    QUARANTINED_MESSAGES = "quarantined_messages"
    ALERT_DELIVERY_FAILING = "alert_delivery_failing"


class AlertMode(StrEnum):
    """When an alert is emailed: soon after it is raised, or in the project's daily digest."""

    IMMEDIATE = "immediate"
    DIGEST = "digest"


def _parse_time_of_day(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        message = f"invalid time of day {value!r}: write it as HH:MM, such as 07:00"
        raise ValueError(message)
    return time(int(match.group(1)), int(match.group(2)))


TimeOfDay = Annotated[time, BeforeValidator(_parse_time_of_day)]


class SmtpSettings(_Section):
    """The SMTP server that alert emails go out through."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = Security.STARTTLS
    username: str | None = None
    password_file: str | None = None
    sender: str = Field(alias="from")
    timeout: Duration = timedelta(seconds=30)
    ca_file: Path | None = None

    @field_validator("sender")
    @classmethod
    def _sender_has_address(cls, value: str) -> str:
        address = parseaddr(value)[1]
        if not _EMAIL.match(address):
            message = (
                f"invalid sender {value!r}: write it as an address or as "
                '"Name <address@domain.example>"'
            )
            raise ValueError(message)
        return value

    @model_validator(mode="after")
    def _check_security(self) -> "SmtpSettings":
        if self.security is Security.PLAIN and not is_loopback_host(self.host):
            message = (
                f'security = "plain" sends alerts and the password unencrypted, so it is allowed '
                f'only towards a loopback address, not {self.host!r}: use "tls" or "starttls"'
            )
            raise ValueError(message)
        if (self.username is None) != (self.password_file is None):
            message = "username and password_file go together: set both to log in, or neither"
            raise ValueError(message)
        return self

    @property
    def effective_port(self) -> int:
        """The configured port, or the standard one for the security mode."""
        if self.port is not None:
            return self.port
        return {Security.TLS: 465, Security.STARTTLS: 587, Security.PLAIN: 25}[self.security]

    @property
    def sender_address(self) -> str:
        """The bare address of ``from``, for the SMTP envelope."""
        return parseaddr(self.sender)[1]


class AlertKindSettings(_Section):
    """Overrides for one alert kind; a key left out keeps the inherited value."""

    enabled: bool | None = None
    mode: AlertMode | None = None
    recipients: list[EmailAddress] | None = None


def _known_alert_kinds(value: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        known = {kind.value for kind in AlertKind}
        unknown = sorted(set(value) - known)
        if unknown:
            message = f"unknown alert kind {unknown[0]!r}: use one of {', '.join(sorted(known))}"
            raise ValueError(message)
    return value


AlertKindTable = Annotated[dict[str, AlertKindSettings], BeforeValidator(_known_alert_kinds)]


class AlertSettings(_Section):
    """How alerts are raised, grouped, reminded and delivered, for every project."""

    operators: list[EmailAddress] = Field(default_factory=list)
    reminder_every: Duration = timedelta(hours=24)
    digest_at: TimeOfDay = time(7, 0)
    group_window: Duration = timedelta(minutes=5)
    lookback: Duration = timedelta(days=7)
    resolution_notes: bool = True
    templates: Path | None = None
    mailbox_unreachable_after: Duration = timedelta(minutes=30)
    evidence_silence_after: Duration = timedelta(hours=12)
    delivery_failing_after: Duration = timedelta(hours=1)
    retry_first: Duration = timedelta(minutes=1)
    retry_max: Duration = timedelta(minutes=30)
    check_every: Duration = timedelta(minutes=1)
    kinds: AlertKindTable = Field(default_factory=dict)


class ProjectAlertSettings(_Section):
    """One project's alert switches and recipients; unset keys inherit from ``[alerts]``."""

    enabled: bool = True
    recipients: list[EmailAddress] | None = None
    operators: list[EmailAddress] | None = None
    digest: bool = True
    digest_at: TimeOfDay | None = None
    kinds: AlertKindTable = Field(default_factory=dict)


class ProjectSettings(_Section):
    """One PACO project: who is alerted, where its evidence arrives and how it is judged."""

    code: str
    name: str
    timezone: TimeZoneName | None = None
    locale: LocaleName | None = None
    managers: list[EmailAddress] = Field(default_factory=list)
    provider: str = "lleida"
    missing_after: Duration | None = None
    orphan_after: Duration | None = None
    poll_interval: Duration | None = None
    match_window_before: Duration | None = None
    match_window_after: Duration | None = None
    reference_pattern: Regex | None = None
    mailbox: MailboxSettings | None = None
    send_log: SendLogSettings = Field(default_factory=SendLogSettings)
    alerts: ProjectAlertSettings = Field(default_factory=ProjectAlertSettings)

    @field_validator("code")
    @classmethod
    def _valid_code(cls, value: str) -> str:
        if not _PROJECT_CODE.match(value):
            message = (
                f"invalid project code {value!r}: use up to 32 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
            raise ValueError(message)
        return value

    @field_validator("reference_pattern")
    @classmethod
    def _one_group_at_most(cls, value: str | None) -> str | None:
        if value is not None and re.compile(value).groups > 1:
            message = (
                f"reference_pattern {value!r} has more than one group: "
                "keep one group around the reference"
            )
            raise ValueError(message)
        return value


class ProviderLabels(_Section):
    """Certificate labels per field; each list holds the synonyms in every language."""

    certificate_id: list[str]
    sender: list[str]
    recipient: list[str]
    subject: list[str]
    message_id: list[str]
    sent_at: list[str]
    delivered_at: list[str]
    status: list[str]
    smtp_detail: list[str]
    content_hash: list[str]
    reason: list[str]


class VerifyPolicy(StrEnum):
    """What a failed authenticity check does to the evidence it concerns."""

    REQUIRE = "require"  # the evidence is unverified and never certifies a send
    WARN = "warn"  # the failure is recorded, and the evidence still counts
    OFF = "off"  # the check does not run


def _check_dkim_keys(value: dict[str, str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for name, record in value.items():
        folded = name.strip().lower().rstrip(".")
        if "._domainkey." not in folded:
            message = (
                f"invalid DKIM key name {name!r}: write the DNS name of the key record, "
                "selector._domainkey.domain, such as s2026._domainkey.lleida.net"
            )
            raise ValueError(message)
        if "p=" not in record.replace(" ", ""):
            message = (
                f"invalid DKIM key record for {name!r}: paste the TXT record, "
                '"v=DKIM1; k=rsa; p=MIIB..."'
            )
            raise ValueError(message)
        keys[folded] = record
    return keys


DkimKeys = Annotated[dict[str, str], AfterValidator(_check_dkim_keys)]


class ProviderProfile(_Section):
    """What a certifying provider's evidence looks like. The values are data, not code.

    The trust keys decide how evidence is authenticated: ``verify_dkim`` and
    ``verify_signature`` default to ``require`` once ``trust_roots`` names a PEM file and to
    ``warn`` before. ``dkim_keys`` pins key records by their DNS name, so that verification
    needs no DNS; with ``dkim_dns`` false no key is ever looked up in DNS.
    """

    name: str
    sender_domains: list[str]
    certifying_addresses: list[EmailAddress]
    timezone: TimeZoneName
    ignore_subject_patterns: list[Regex]
    rejection_patterns: list[Regex]
    failure_patterns: list[Regex]
    subject_prefixes: list[Regex]
    labels: ProviderLabels
    verify_dkim: VerifyPolicy | None = None
    verify_signature: VerifyPolicy | None = None
    trust_roots: list[Path] = Field(default_factory=list)
    signer_pattern: Regex | None = None
    require_timestamp: bool = False
    dkim_keys: DkimKeys = Field(default_factory=dict)
    dkim_dns: bool = True
    dns_timeout: Duration = timedelta(seconds=5)

    @field_validator("sender_domains")
    @classmethod
    def _lowercase_domains(cls, value: list[str]) -> list[str]:
        return [domain.strip().lower().strip(".") for domain in value]

    @field_validator("dns_timeout")
    @classmethod
    def _positive_timeout(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            message = f"dns_timeout must be positive, not {value}"
            raise ValueError(message)
        return value

    @property
    def dkim_policy(self) -> VerifyPolicy:
        """``verify_dkim``, or its default: require with trust roots, warn without."""
        return self.verify_dkim or self._default_policy()

    @property
    def signature_policy(self) -> VerifyPolicy:
        """``verify_signature``, or its default: require with trust roots, warn without."""
        return self.verify_signature or self._default_policy()

    def _default_policy(self) -> VerifyPolicy:
        return VerifyPolicy.REQUIRE if self.trust_roots else VerifyPolicy.WARN


_MIB = 1024 * 1024


class ReadingLimits(_Section):
    """Ceilings on one message, checked before and while it is read, and on the reader process.

    A message past a size or structure limit is quarantined with the limit named. The reader
    runs in worker processes with ``cpu_seconds`` of CPU time per message and ``memory_bytes``
    of memory above the worker's own footprint. A worker that stays silent for ``wall_seconds``
    is stopped and replaced.
    """

    # Lleida.net accepts sends up to 20 MB; base64 adds a third, and a forward wraps it again.
    max_message_bytes: int = Field(default=40 * _MIB, ge=1024)
    max_header_bytes: int = Field(default=256 * 1024, ge=1024)
    max_mime_parts: int = Field(default=500, ge=1)
    max_nesting_depth: int = Field(default=16, ge=1)
    max_pdf_bytes: int = Field(default=30 * _MIB, ge=1024)
    max_pdf_pages: int = Field(default=2000, ge=1)
    max_decompressed_bytes: int = Field(default=100 * _MIB, ge=1024)
    cpu_seconds: int = Field(default=20, ge=1)
    memory_bytes: int = Field(default=1024 * _MIB, ge=16 * _MIB)
    wall_seconds: float = Field(default=120.0, gt=0)
    workers: int = Field(default=1, ge=1, le=32)


def _builtin_provider(name: str) -> dict[str, Any]:
    with (BUILTIN_PROVIDERS_DIR / f"{name}.toml").open("rb") as handle:
        return tomllib.load(handle)


def builtin_provider_names() -> list[str]:
    """Names of the providers acuse ships a profile for."""
    return sorted(path.stem for path in BUILTIN_PROVIDERS_DIR.glob("*.toml"))


class MetricsSettings(_Section):
    """The optional Prometheus endpoint of the daemon, as ``host:port``; unset turns it off."""

    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen_address(value)
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        """The host and port to listen on, or None when the endpoint is off."""
        return None if self.listen is None else split_listen_address(self.listen)


def split_listen_address(value: str) -> tuple[str, int]:
    """Split ``host:port`` or ``[v6-address]:port``; raise ValueError for anything else."""
    host, separator, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not separator or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        message = f"invalid listen address {value!r}: write host:port, such as 127.0.0.1:9464"
        raise ValueError(message)
    return host, int(port)


class Settings(BaseSettings):
    """The whole configuration of one acuse installation."""

    model_config = SettingsConfigDict(
        env_prefix="ACUSE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    defaults: Defaults = Field(default_factory=Defaults)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    limits: ReadingLimits = Field(default_factory=ReadingLimits)
    providers: dict[str, ProviderProfile] = Field(default_factory=dict)
    projects: list[ProjectSettings] = Field(default_factory=list)
    smtp: SmtpSettings | None = None
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    _config_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init arguments; the environment must win over it.
        return (env_settings, init_settings)

    @field_validator("providers", mode="before")
    @classmethod
    def _merge_builtin_providers(cls, value: Any) -> Any:
        overrides = value if isinstance(value, dict) else {}
        merged: dict[str, Any] = {}
        for name in builtin_provider_names():
            profile = _builtin_provider(name)
            override = overrides.get(name, {})
            if isinstance(override, dict):
                labels = {**profile.get("labels", {}), **override.get("labels", {})}
                profile = {**profile, **override, "labels": labels}
            merged[name] = profile
        for name, profile in overrides.items():
            merged.setdefault(name, profile)
        return merged

    @model_validator(mode="after")
    def _check_projects(self) -> "Settings":
        seen: set[str] = set()
        for project in self.projects:
            if project.code in seen:
                message = (
                    f"project code {project.code!r} appears twice: give each project its own code"
                )
                raise ValueError(message)
            seen.add(project.code)
            if project.provider not in self.providers:
                message = (
                    f"unknown provider {project.provider!r} in project {project.code!r}: "
                    f"use one of {', '.join(sorted(self.providers))}"
                )
                raise ValueError(message)
        return self

    @property
    def config_dir(self) -> Path:
        """The folder of the configuration file; relative paths are read from it."""
        return self._config_dir

    def project(self, code: str) -> ProjectSettings:
        """Return the project with ``code``; raise ConfigError naming the known codes otherwise."""
        for project in self.projects:
            if project.code == code:
                return project
        known = ", ".join(p.code for p in self.projects) or _("none")
        message = _("Unknown project {code!r}. Configured projects: {known}.").format(
            code=code, known=known
        )
        raise ConfigError(message, key="projects")

    def resolve_path(self, path: Path | str) -> Path:
        """Resolve a path from the configuration against the configuration file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self._config_dir / candidate

    @property
    def archive_path(self) -> Path:
        """The archive folder, resolved against the configuration file's folder."""
        return self.resolve_path(self.archive.path)

    @property
    def database_url(self) -> str:
        """The database URL, with a relative SQLite path resolved against the config folder."""
        prefix = "sqlite:///"
        url = self.database.url
        if (
            url.startswith(prefix)
            and not url.startswith(prefix + "/")
            and url != "sqlite:///:memory:"
        ):
            return prefix + str(self.resolve_path(url[len(prefix) :]))
        return url


class ProjectView:
    """A project's settings with the global defaults filled in where the project sets nothing."""

    def __init__(self, project: ProjectSettings, settings: Settings) -> None:
        self.settings = project
        self._defaults = settings.defaults
        self.limits = settings.limits
        self.provider = _with_resolved_paths(settings.providers[project.provider], settings)

    @property
    def code(self) -> str:
        return self.settings.code

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone or self._defaults.timezone)

    @property
    def locale(self) -> str:
        return self.settings.locale or self._defaults.locale

    @property
    def missing_after(self) -> timedelta:
        return self.settings.missing_after or self._defaults.missing_after

    @property
    def orphan_after(self) -> timedelta:
        return self.settings.orphan_after or self._defaults.orphan_after

    @property
    def poll_interval(self) -> timedelta:
        return self.settings.poll_interval or self._defaults.poll_interval

    @property
    def match_window_before(self) -> timedelta:
        return self.settings.match_window_before or self._defaults.match_window_before

    @property
    def match_window_after(self) -> timedelta:
        return self.settings.match_window_after or self._defaults.match_window_after

    @property
    def reconcile_interval(self) -> timedelta:
        return self._defaults.reconcile_interval

    @property
    def send_log_interval(self) -> timedelta:
        return self.settings.send_log.interval or self._defaults.send_log_interval

    @property
    def job_timeout(self) -> timedelta:
        return self._defaults.job_timeout

    @property
    def imap_timeout(self) -> timedelta:
        mailbox = self.settings.mailbox
        if mailbox is not None and mailbox.timeout is not None:
            return mailbox.timeout
        return self._defaults.imap_timeout


def _with_resolved_paths(profile: ProviderProfile, settings: Settings) -> ProviderProfile:
    """Return ``profile`` with its trust roots resolved against the configuration's folder."""
    if not profile.trust_roots:
        return profile
    roots = [settings.resolve_path(path) for path in profile.trust_roots]
    return profile.model_copy(update={"trust_roots": roots})


def project_view(settings: Settings, code: str) -> ProjectView:
    """Return the project ``code`` with defaults applied."""
    return ProjectView(settings.project(code), settings)


def project_views(settings: Settings, code: str | None = None) -> list[ProjectView]:
    """Return every project, or only ``code`` when given, with defaults applied."""
    if code is not None:
        return [project_view(settings, code)]
    return [ProjectView(project, settings) for project in settings.projects]


def config_path_from_environment() -> Path | None:
    """The configuration file named by ``ACUSE_CONFIG``, if set."""
    value = os.environ.get(CONFIG_ENV)
    return Path(value) if value else None


def load_settings(path: Path | None) -> Settings:
    """Read and validate the configuration file at ``path``.

    Without a path, ``ACUSE_CONFIG`` names the file. Raises ConfigError when no file is given,
    the file cannot be read or parsed, or any key is unknown or invalid.
    """
    path = path or config_path_from_environment()
    if path is None:
        message = _("No configuration file given: pass --config FILE or set ACUSE_CONFIG.")
        raise ConfigError(message)

    data = _read_toml(path)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise _config_error_from_validation(exc, path) from exc
    settings._config_dir = path.resolve().parent
    return settings


def settings_from_mapping(data: dict[str, Any], config_dir: Path) -> Settings:
    """Validate settings given as a mapping, as if read from a file in ``config_dir``."""
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise _config_error_from_validation(exc, config_dir / "<mapping>") from exc
    settings._config_dir = config_dir.resolve()
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        message = _(
            "Configuration file {path} not found: check the path given to --config."
        ).format(path=path)
        raise ConfigError(message) from exc
    except OSError as exc:
        message = _("Cannot read configuration file {path}: {error}.").format(
            path=path, error=exc.strerror
        )
        raise ConfigError(message) from exc
    except tomllib.TOMLDecodeError as exc:
        message = _("Configuration file {path} is not valid TOML: {error}.").format(
            path=path, error=exc
        )
        raise ConfigError(message) from exc


def _dotted_key(location: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in location:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(item)
    return ".".join(parts)


def _config_error_from_validation(exc: ValidationError, path: Path) -> ConfigError:
    """Turn pydantic's first error into one sentence that names the key and the fix."""
    error = exc.errors(include_url=False)[0]
    key = _dotted_key(tuple(error["loc"]))
    kind = error["type"]
    if kind == "extra_forbidden":
        detail = _("unknown key; check its spelling against the configuration reference")
    elif kind == "missing":
        detail = _("required key is missing; add it")
    else:
        detail = str(error["msg"]).removeprefix("Value error, ")
    message = _("Invalid configuration in {path}: {key}: {detail}.").format(
        path=path, key=key, detail=detail
    )
    return ConfigError(message, key=key)
