"""Settings of the alert emails: kinds, recipients, timing, and the SMTP server they go through."""

from datetime import time, timedelta
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from config.i18n import _
from config.types import (
    EMAIL_PATTERN,
    Duration,
    EmailAddress,
    Integer,
    Section,
    Security,
    TimeOfDay,
    duration_range,
    is_loopback_host,
)


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
    SEND_LOG_FAILED = "send_log_failed"
    ALERT_DELIVERY_FAILING = "alert_delivery_failing"


class AlertMode(StrEnum):
    """When an alert is emailed: soon after it is raised, or in the project's daily digest."""

    IMMEDIATE = "immediate"
    DIGEST = "digest"


class SmtpSettings(Section):
    """The SMTP server that alert emails go out through."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str
    port: Integer | None = Field(default=None, ge=1, le=65535)
    security: Security = Security.STARTTLS
    username: str | None = None
    password_file: str | None = None
    sender: str = Field(alias="from")
    timeout: Annotated[Duration, duration_range("1s", "1h")] = timedelta(seconds=30)
    ca_file: Path | None = None

    @field_validator("sender")
    @classmethod
    def _sender_has_address(cls, value: str) -> str:
        address = parseaddr(value)[1]
        if not EMAIL_PATTERN.match(address):
            message = _(
                "invalid sender {value!r}: write it as an address or as "
                '"Name <address@domain.example>"'
            ).format(value=value)
            raise ValueError(message)
        return value

    @model_validator(mode="after")
    def _check_security(self) -> "SmtpSettings":
        if self.security is Security.PLAIN and not is_loopback_host(self.host):
            message = _(
                'security = "plain" sends alerts and the password unencrypted, so it is allowed '
                'only towards a loopback address, not {host!r}: use "tls" or "starttls"'
            ).format(host=self.host)
            raise ValueError(message)
        if (self.username is None) != (self.password_file is None):
            message = _("username and password_file go together: set both to log in, or neither")
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


class AlertKindSettings(Section):
    """Overrides for one alert kind; a key left out keeps the inherited value."""

    enabled: bool | None = None
    mode: AlertMode | None = None
    recipients: list[EmailAddress] | None = None


def _known_alert_kinds(value: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        known = {kind.value for kind in AlertKind}
        unknown = sorted(set(value) - known)
        if unknown:
            message = _("unknown alert kind {kind!r}: use one of {known}").format(
                kind=unknown[0], known=", ".join(sorted(known))
            )
            raise ValueError(message)
    return value


AlertKindTable = Annotated[dict[str, AlertKindSettings], BeforeValidator(_known_alert_kinds)]


class AlertSettings(Section):
    """How alerts are raised, grouped, reminded and delivered, for every project."""

    operators: list[EmailAddress] = Field(default_factory=list)
    reminder_every: Annotated[Duration, duration_range("1m", "90d")] = timedelta(hours=24)
    digest_at: TimeOfDay = time(7, 0)
    group_window: Annotated[Duration, duration_range("0s", "1d")] = timedelta(minutes=5)
    lookback: Annotated[Duration, duration_range("1h", "3650d")] = timedelta(days=7)
    resolution_notes: bool = True
    templates: Path | None = None
    mailbox_unreachable_after: Annotated[Duration, duration_range("1m", "30d")] = timedelta(
        minutes=30
    )
    evidence_silence_after: Annotated[Duration, duration_range("1m", "90d")] = timedelta(hours=12)
    delivery_failing_after: Annotated[Duration, duration_range("1m", "30d")] = timedelta(hours=1)
    retry_first: Annotated[Duration, duration_range("1s", "1d")] = timedelta(minutes=1)
    retry_max: Annotated[Duration, duration_range("1s", "7d")] = timedelta(minutes=30)
    check_every: Annotated[Duration, duration_range("1s", "1d")] = timedelta(minutes=1)
    kinds: AlertKindTable = Field(default_factory=dict)


class ProjectAlertSettings(Section):
    """One project's alert switches and recipients; unset keys inherit from ``[alerts]``."""

    enabled: bool = True
    recipients: list[EmailAddress] | None = None
    operators: list[EmailAddress] | None = None
    digest: bool = True
    digest_at: TimeOfDay | None = None
    kinds: AlertKindTable = Field(default_factory=dict)
