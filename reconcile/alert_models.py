"""Tables of the alerts: one row per problem, and the outbox of emails that report them.

An alert is open while ``resolved_at`` is NULL, and at most one alert per (kind, project,
subject) is open at a time. The outbox holds every email that the policy decided to send, from
the moment it decided, until the SMTP server accepts it; each outbox item links one alert to the
email that reports it, with the alert's details as they were then.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, LargeBinary, String, Text, text
from sqlmodel import Field, SQLModel

from config.alert_settings import AlertKind
from config.database import UTCDateTime, enum_type
from monitor.models import Evidence, StoredMessage  # noqa: F401 - foreign keys refer to them
from reconcile.models import Send  # noqa: F401 - alert.send_id refers to its table

INSTALLATION = ""
"""The project code of alerts that concern the whole installation, not one project."""


class AlertEvent(StrEnum):
    """Why an alert appears in an email."""

    RAISED = "raised"
    REMINDER = "reminder"
    RESOLVED = "resolved"


class Resolution(StrEnum):
    """Why an alert was closed."""

    CERTIFIED = "certified"
    SUPERSEDED = "superseded"
    STATE_CHANGED = "state_changed"
    NEEDS_REVIEW = "needs_review"
    EVIDENCE_CLAIMED = "evidence_claimed"
    MAILBOX_RECOVERED = "mailbox_recovered"
    EVIDENCE_ARRIVED = "evidence_arrived"
    MESSAGE_RELEASED = "message_released"
    DELIVERY_RECOVERED = "delivery_recovered"
    SEND_LOG_IMPORTED = "send_log_imported"
    DISABLED = "disabled"


class OutboxPurpose(StrEnum):
    """What an outbox email is."""

    ALERT = "alert"
    DIGEST = "digest"
    TEST = "test"


class Alert(SQLModel, table=True):
    """One problem, from the evaluation that found it until the one that found it gone.

    ``subject_key`` names what the problem is about inside the project: ``send:<id>``,
    ``evidence:<id>``, ``message:<id>``, ``mailbox:<folder>``, ``evidence-mailbox`` or ``smtp``.
    ``details`` is a JSON object with the facts the email shows, refreshed at each evaluation.
    """

    __tablename__ = "alert"
    __table_args__ = (
        Index(
            "uq_alert_open_subject",
            "kind",
            "project",
            "subject_key",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index("ix_alert_project_open", "project", "resolved_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: AlertKind = Field(sa_type=enum_type(AlertKind))
    project: str = Field(sa_type=String(64))
    subject_key: str = Field(sa_type=String(255))
    send_id: int | None = Field(default=None, foreign_key="send.id", index=True)
    evidence_id: int | None = Field(default=None, foreign_key="evidence.id")
    message_pk: int | None = Field(default=None, foreign_key="message.id")
    details: str = Field(default="{}", sa_type=Text)
    opened_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    last_seen_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    last_notified_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    reminders: int = 0
    resolved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    resolution: Resolution | None = Field(default=None, sa_type=enum_type(Resolution))


class OutboxMessage(SQLModel, table=True):
    """One alert email, from the decision to send it until the SMTP server accepts it.

    While ``raw`` is NULL the email is still collecting items: items of the same
    ``group_key`` join it until ``send_after``. Delivery then renders it once into ``raw``
    with a fixed ``message_id``, so every retry sends the same bytes. ``claimed_by`` and
    ``claimed_until`` let one delivery run at a time own the row.
    """

    __tablename__ = "alert_outbox"
    __table_args__ = (
        Index("ix_alert_outbox_due", "sent_at", "send_after"),
        Index("ix_alert_outbox_group", "group_key", "rendered"),
    )

    id: int | None = Field(default=None, primary_key=True)
    purpose: OutboxPurpose = Field(sa_type=enum_type(OutboxPurpose))
    project: str = Field(sa_type=String(64))
    kind: AlertKind | None = Field(default=None, sa_type=enum_type(AlertKind))
    event: AlertEvent | None = Field(default=None, sa_type=enum_type(AlertEvent))
    group_key: str = Field(sa_type=String(255))
    recipients: str = Field(sa_type=Text)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    send_after: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    period_start: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    rendered: bool = False
    raw: bytes | None = Field(default=None, sa_column=Column(LargeBinary()))
    subject: str | None = Field(default=None, sa_type=Text)
    message_id: str | None = Field(default=None, sa_type=String(998))
    attempts: int = 0
    last_attempt_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    next_attempt_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    first_failed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_error: str | None = Field(default=None, sa_type=Text)
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    smtp_reply: str | None = Field(default=None, sa_type=Text)
    refused: str | None = Field(default=None, sa_type=Text)
    claimed_by: str | None = Field(default=None, sa_type=String(64))
    claimed_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class OutboxItem(SQLModel, table=True):
    """One alert in one email, with the alert's details as they were when it was queued."""

    __tablename__ = "alert_outbox_item"

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="alert_outbox.id", index=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    event: AlertEvent = Field(sa_type=enum_type(AlertEvent))
    details: str = Field(default="{}", sa_type=Text)
    queued_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
