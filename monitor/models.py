"""Tables of the monitor stage: the message ledger, IMAP cursors and the evidence read."""

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from config.database import UTCDateTime, enum_type
from monitor.outcomes import CheckResult, EvidenceKind, MessageClass, TrustVerdict

# The enums are re-exported, since the rest of acuse imports them with the tables.
__all__ = [
    "CheckResult",
    "Evidence",
    "EvidenceKind",
    "ImapNumber",
    "MailboxCursor",
    "MailboxHealth",
    "MessageClass",
    "StoredMessage",
    "TrustVerdict",
]

# IMAP UIDs and UIDVALIDITY values are unsigned 32-bit numbers (RFC 9051, section 2.3.1.1), so
# they need more than PostgreSQL's signed 32-bit integer. SQLite's INTEGER already holds 64 bits.
ImapNumber = BigInteger().with_variant(Integer(), "sqlite")


class StoredMessage(SQLModel, table=True):
    """One raw message in the ledger; its bytes are in the archive under ``sha256``.

    ``origin`` is ``imap`` or ``file``. For IMAP, ``location`` is the folder and
    (``uidvalidity``, ``uid``) its place there; for files, ``location`` is the path it was read
    from. The same bytes are recorded once per project, wherever they were seen again.
    """

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("project", "sha256", name="uq_message_project_sha256"),
        UniqueConstraint("project", "location", "uidvalidity", "uid", name="uq_message_imap_place"),
        Index("ix_message_project_class", "project", "classification"),
        Index("ix_message_project_read_at", "project", "read_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    project: str = Field(sa_type=String(64), index=True)
    origin: str = Field(sa_type=String(16))
    location: str = Field(sa_type=Text)
    uidvalidity: int | None = Field(default=None, sa_type=ImapNumber)
    uid: int | None = Field(default=None, sa_type=ImapNumber)
    sha256: str = Field(sa_type=String(64))
    size: int
    header_message_id: str | None = Field(default=None, sa_type=Text)
    from_address: str | None = Field(default=None, sa_type=Text)
    subject: str | None = Field(default=None, sa_type=Text)
    header_date: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    stored_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    classification: MessageClass = Field(sa_type=enum_type(MessageClass))
    quarantine_reason: str | None = Field(default=None, sa_type=Text)
    read_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class MailboxCursor(SQLModel, table=True):
    """How far a project's IMAP folder has been read: every UID up to ``last_uid`` is stored."""

    __tablename__ = "mailbox_cursor"

    project: str = Field(sa_type=String(64), primary_key=True)
    folder: str = Field(sa_type=String(255), primary_key=True)
    uidvalidity: int = Field(sa_type=ImapNumber)
    last_uid: int = Field(sa_type=ImapNumber)
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Evidence(SQLModel, table=True):
    """What one certificate, or one service notice, says about one send and recipient.

    Times are aware and in UTC. ``raw_text`` keeps the certificate or notice text exactly as
    read, so a field can be checked by hand or read again after a parser fix. The ``dkim_*``,
    ``signature_*`` and ``cross_check_result`` columns record the authenticity checks, and
    ``trust_verdict`` the provider policy's judgement of them; ``trust_reasons`` lists every
    failed check, one per line.
    """

    __tablename__ = "evidence"
    __table_args__ = (
        UniqueConstraint("project", "provider", "certificate_id", name="uq_evidence_certificate"),
        Index("ix_evidence_project_recipient", "project", "recipient"),
        Index("ix_evidence_project_original_message_id", "project", "original_message_id"),
        Index("ix_evidence_project_id", "project", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_pk: int = Field(foreign_key="message.id", index=True)
    project: str = Field(sa_type=String(64))
    provider: str = Field(sa_type=String(32))
    kind: EvidenceKind = Field(sa_type=enum_type(EvidenceKind))
    source: str = Field(sa_type=String(16))
    certificate_id: str | None = Field(default=None, sa_type=String(255))
    sender: str | None = Field(default=None, sa_type=Text)
    recipient: str | None = Field(default=None, sa_type=String(320))
    subject: str | None = Field(default=None, sa_type=Text)
    original_message_id: str | None = Field(default=None, sa_type=String(998))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    status_text: str | None = Field(default=None, sa_type=Text)
    smtp_code: str | None = Field(default=None, sa_type=String(32))
    smtp_detail: str | None = Field(default=None, sa_type=Text)
    reason: str | None = Field(default=None, sa_type=Text)
    content_hash: str | None = Field(default=None, sa_type=Text)
    attachment_name: str | None = Field(default=None, sa_type=Text)
    attachment_sha256: str | None = Field(default=None, sa_type=String(64))
    raw_text: str = Field(default="", sa_type=Text)
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    dkim_result: CheckResult = Field(default=CheckResult.OFF, sa_type=enum_type(CheckResult))
    dkim_domain: str | None = Field(default=None, sa_type=String(255))
    dkim_selector: str | None = Field(default=None, sa_type=String(255))
    signature_result: CheckResult = Field(default=CheckResult.OFF, sa_type=enum_type(CheckResult))
    signature_signer: str | None = Field(default=None, sa_type=Text)
    signature_time: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    cross_check_result: CheckResult = Field(default=CheckResult.OFF, sa_type=enum_type(CheckResult))
    trust_verdict: TrustVerdict = Field(
        default=TrustVerdict.UNCHECKED, sa_type=enum_type(TrustVerdict)
    )
    trust_reasons: str | None = Field(default=None, sa_type=Text)


class MailboxHealth(SQLModel, table=True):
    """How the polls of a project's IMAP folder have gone: last success, last error, streak.

    ``failing_since`` is the time of the first failure of the current streak, so alerts can
    wait until a mailbox has failed for longer than a threshold.
    """

    __tablename__ = "mailbox_health"

    project: str = Field(sa_type=String(64), primary_key=True)
    folder: str = Field(sa_type=String(255), primary_key=True)
    last_attempt_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_success_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_error: str | None = Field(default=None, sa_type=Text)
    last_error_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    consecutive_failures: int = 0
    failing_since: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    messages_stored: int = 0
