"""Tables of the reconcile stage: imported sends, import runs, and each send's match and state."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from config.database import UTCDateTime, enum_type
from monitor.models import Evidence  # noqa: F401 - send.evidence_id refers to its table


class SendState(StrEnum):
    """Where one send and recipient stands. The values are stable codes for scripts."""

    PENDING = "pending"
    CERTIFIED = "certified"
    DELIVERY_FAILED = "delivery_failed"
    REJECTED = "rejected"
    MISSING = "missing"
    NOT_COPIED = "not_copied"
    UNVERIFIED = "unverified"
    AMBIGUOUS = "ambiguous"


class MatchRule(StrEnum):
    """The rule that linked a send to its evidence, strongest first."""

    MESSAGE_ID = "message_id"
    REFERENCE = "reference"
    RECIPIENT_SUBJECT_TIME = "recipient_subject_time"
    SUBJECT_TIME = "subject_time"


class Send(SQLModel, table=True):
    """One send to one recipient, as PACO's send log reports it, with its reconciliation result.

    ``send_key`` identifies the row across imports, so re-importing a file or an overlapping
    export adds nothing twice. ``evidence_id``, ``match_rule``, ``candidates``, ``state`` and
    ``state_changed_at`` are written by reconciliation; ``state`` is the state at the project's
    last reconciliation pass, while queries judge the state afresh at the time they ask about.
    """

    __tablename__ = "send"
    __table_args__ = (
        UniqueConstraint("project", "send_key", name="uq_send_project_key"),
        Index("ix_send_project_recipient_time", "project", "recipient", "sent_at"),
        Index("ix_send_project_state_time", "project", "state", "sent_at"),
        Index("ix_send_project_time", "project", "sent_at"),
        Index("ix_send_project_message_id", "project", "message_id"),
        Index("ix_send_project_id", "project", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    project: str = Field(sa_type=String(64))
    send_key: str = Field(sa_type=String(64))
    external_id: str | None = Field(default=None, sa_type=String(255))
    notification_type: str | None = Field(default=None, sa_type=Text)
    negocio: str | None = Field(default=None, sa_type=Text)
    inmueble: str | None = Field(default=None, sa_type=Text)
    client: str | None = Field(default=None, sa_type=Text)
    recipient: str = Field(sa_type=String(320))
    lleida_copied: bool | None = None
    sent_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    subject: str = Field(default="", sa_type=Text)
    message_id: str | None = Field(default=None, sa_type=String(998))
    import_id: int | None = Field(default=None, foreign_key="send_import.id")
    import_line: int | None = None
    imported_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

    evidence_id: int | None = Field(default=None, foreign_key="evidence.id", index=True)
    match_rule: MatchRule | None = Field(default=None, sa_type=enum_type(MatchRule))
    candidates: str | None = Field(default=None, sa_type=Text)
    state: SendState = Field(default=SendState.PENDING, sa_type=enum_type(SendState))
    state_changed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class SendImport(SQLModel, table=True):
    """One import of a send-log file: what it contained and what it added.

    ``finished_at`` stays NULL while the import runs, and for good when it was interrupted, so
    the daemon imports that content again; the sends that the interrupted import stored are
    then counted as already known.
    """

    __tablename__ = "send_import"

    id: int | None = Field(default=None, primary_key=True)
    project: str = Field(sa_type=String(64), index=True)
    path: str = Field(sa_type=Text)
    sha256: str = Field(sa_type=String(64))
    imported_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    rows: int = 0
    added: int = 0
    already_known: int = 0
    rejected: int = 0


class MatchCandidate(SQLModel, table=True):
    """Evidence that could belong to an ambiguous send; a person decides which one does."""

    __tablename__ = "match_candidate"

    send_id: int = Field(foreign_key="send.id", primary_key=True)
    evidence_id: int = Field(foreign_key="evidence.id", primary_key=True, index=True)


class ReconcileRun(SQLModel, table=True):
    """The last reconciliation pass of a project and what it changed."""

    __tablename__ = "reconcile_run"

    project: str = Field(sa_type=String(64), primary_key=True)
    as_of: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    finished_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    matched: int = 0
    ambiguous: int = 0
    state_changes: int = 0
    # What the pass matched: a digest of the project's sends, evidence and matching rules. A
    # pass that finds the same digest has nothing new to match (reconcile.incremental).
    inputs: str | None = Field(default=None, sa_type=String(255))


class SendLogFailure(SQLModel, table=True):
    """A watched send-log file that could not be imported, kept until the file changes."""

    __tablename__ = "send_log_failure"

    project: str = Field(sa_type=String(64), primary_key=True)
    path: str = Field(sa_type=Text, primary_key=True)
    sha256: str = Field(sa_type=String(64))
    failed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    reason: str = Field(sa_type=Text)
