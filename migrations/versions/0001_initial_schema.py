"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import config.database

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum("alert", "digest", "test", name="outboxpurpose", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "certification_missing",
                "delivery_failed",
                "certification_rejected",
                "not_copied",
                "evidence_unverified",
                "orphan_evidence",
                "mailbox_unreachable",
                "evidence_silence",
                "quarantined_messages",
                "alert_delivery_failing",
                name="alertkind",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "event",
            sa.Enum(
                "raised", "reminder", "resolved", name="alertevent", native_enum=False, length=32
            ),
            nullable=True,
        ),
        sa.Column("group_key", sa.String(length=255), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("created_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("send_after", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("period_start", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rendered", sa.Boolean(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_failed_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("smtp_reply", sa.Text(), nullable=True),
        sa.Column("refused", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_alert_outbox_due", ["sent_at", "send_after"], unique=False)
        batch_op.create_index("ix_alert_outbox_group", ["group_key", "rendered"], unique=False)

    op.create_table(
        "mailbox_cursor",
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("folder", sa.String(length=255), nullable=False),
        sa.Column("uidvalidity", sa.Integer(), nullable=False),
        sa.Column("last_uid", sa.Integer(), nullable=False),
        sa.Column("updated_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", "folder"),
    )
    op.create_table(
        "mailbox_health",
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("folder", sa.String(length=255), nullable=False),
        sa.Column("last_attempt_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("messages_stored", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project", "folder"),
    )
    op.create_table(
        "message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("uidvalidity", sa.Integer(), nullable=True),
        sa.Column("uid", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("header_message_id", sa.Text(), nullable=True),
        sa.Column("from_address", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("header_date", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stored_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "classification",
            sa.Enum(
                "evidence",
                "unrelated",
                "quarantined",
                name="messageclass",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("quarantine_reason", sa.Text(), nullable=True),
        sa.Column("read_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "project", "location", "uidvalidity", "uid", name="uq_message_imap_place"
        ),
        sa.UniqueConstraint("project", "sha256", name="uq_message_project_sha256"),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_project"), ["project"], unique=False)
        batch_op.create_index(
            "ix_message_project_class", ["project", "classification"], unique=False
        )

    op.create_table(
        "reconcile_run",
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("as_of", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("ambiguous", sa.Integer(), nullable=False),
        sa.Column("state_changes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project"),
    )
    op.create_table(
        "send_import",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("imported_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("already_known", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("send_import", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_send_import_project"), ["project"], unique=False)

    op.create_table(
        "evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "delivered",
                "delivery_failed",
                "rejected",
                name="evidencekind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("certificate_id", sa.String(length=255), nullable=True),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("original_message_id", sa.String(length=998), nullable=True),
        sa.Column("sent_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status_text", sa.Text(), nullable=True),
        sa.Column("smtp_code", sa.String(length=32), nullable=True),
        sa.Column("smtp_detail", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.Text(), nullable=True),
        sa.Column("attachment_name", sa.Text(), nullable=True),
        sa.Column("attachment_sha256", sa.String(length=64), nullable=True),
        sa.Column("raw_text", sa.Text(), nullable=False),
        sa.Column("received_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "dkim_result",
            sa.Enum(
                "pass",
                "fail",
                "none",
                "off",
                "not_applicable",
                name="checkresult",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("dkim_domain", sa.String(length=255), nullable=True),
        sa.Column("dkim_selector", sa.String(length=255), nullable=True),
        sa.Column(
            "signature_result",
            sa.Enum(
                "pass",
                "fail",
                "none",
                "off",
                "not_applicable",
                name="checkresult",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("signature_signer", sa.Text(), nullable=True),
        sa.Column("signature_time", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "cross_check_result",
            sa.Enum(
                "pass",
                "fail",
                "none",
                "off",
                "not_applicable",
                name="checkresult",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "trust_verdict",
            sa.Enum(
                "verified",
                "warning",
                "unverified",
                "unchecked",
                name="trustverdict",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("trust_reasons", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["message.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "project", "provider", "certificate_id", name="uq_evidence_certificate"
        ),
    )
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evidence_message_pk"), ["message_pk"], unique=False)
        batch_op.create_index(
            "ix_evidence_project_original_message_id",
            ["project", "original_message_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_evidence_project_recipient", ["project", "recipient"], unique=False
        )

    op.create_table(
        "send",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("send_key", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("notification_type", sa.Text(), nullable=True),
        sa.Column("negocio", sa.Text(), nullable=True),
        sa.Column("inmueble", sa.Text(), nullable=True),
        sa.Column("client", sa.Text(), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("lleida_copied", sa.Boolean(), nullable=True),
        sa.Column("sent_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("import_line", sa.Integer(), nullable=True),
        sa.Column("imported_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("evidence_id", sa.Integer(), nullable=True),
        sa.Column(
            "match_rule",
            sa.Enum(
                "message_id",
                "reference",
                "recipient_subject_time",
                "subject_time",
                name="matchrule",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("candidates", sa.Text(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "certified",
                "delivery_failed",
                "rejected",
                "missing",
                "not_copied",
                "unverified",
                "ambiguous",
                name="sendstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("state_changed_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["evidence_id"],
            ["evidence.id"],
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["send_import.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project", "send_key", name="uq_send_project_key"),
    )
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_send_evidence_id"), ["evidence_id"], unique=False)
        batch_op.create_index("ix_send_project_message_id", ["project", "message_id"], unique=False)
        batch_op.create_index(
            "ix_send_project_recipient_time", ["project", "recipient", "sent_at"], unique=False
        )
        batch_op.create_index(
            "ix_send_project_state_time", ["project", "state", "sent_at"], unique=False
        )
        batch_op.create_index("ix_send_project_time", ["project", "sent_at"], unique=False)

    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "certification_missing",
                "delivery_failed",
                "certification_rejected",
                "not_copied",
                "evidence_unverified",
                "orphan_evidence",
                "mailbox_unreachable",
                "evidence_silence",
                "quarantined_messages",
                "alert_delivery_failing",
                name="alertkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("subject_key", sa.String(length=255), nullable=False),
        sa.Column("send_id", sa.Integer(), nullable=True),
        sa.Column("evidence_id", sa.Integer(), nullable=True),
        sa.Column("message_pk", sa.Integer(), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("opened_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_notified_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reminders", sa.Integer(), nullable=False),
        sa.Column("resolved_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "resolution",
            sa.Enum(
                "certified",
                "superseded",
                "state_changed",
                "evidence_claimed",
                "mailbox_recovered",
                "evidence_arrived",
                "message_released",
                "delivery_recovered",
                "disabled",
                name="resolution",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["evidence_id"],
            ["evidence.id"],
        ),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["message.id"],
        ),
        sa.ForeignKeyConstraint(
            ["send_id"],
            ["send.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index("ix_alert_project_open", ["project", "resolved_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_alert_send_id"), ["send_id"], unique=False)
        batch_op.create_index(
            "uq_alert_open_subject",
            ["kind", "project", "subject_key"],
            unique=True,
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        )

    op.create_table(
        "match_candidate",
        sa.Column("send_id", sa.Integer(), nullable=False),
        sa.Column("evidence_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evidence_id"],
            ["evidence.id"],
        ),
        sa.ForeignKeyConstraint(
            ["send_id"],
            ["send.id"],
        ),
        sa.PrimaryKeyConstraint("send_id", "evidence_id"),
    )
    with op.batch_alter_table("match_candidate", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_match_candidate_evidence_id"), ["evidence_id"], unique=False
        )

    op.create_table(
        "alert_outbox_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column(
            "event",
            sa.Enum(
                "raised", "reminder", "resolved", name="alertevent", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("queued_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alert.id"],
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["alert_outbox.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_outbox_item", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_outbox_item_alert_id"), ["alert_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_alert_outbox_item_outbox_id"), ["outbox_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("alert_outbox_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_outbox_item_outbox_id"))
        batch_op.drop_index(batch_op.f("ix_alert_outbox_item_alert_id"))

    op.drop_table("alert_outbox_item")
    with op.batch_alter_table("match_candidate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_match_candidate_evidence_id"))

    op.drop_table("match_candidate")
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_alert_open_subject",
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_alert_send_id"))
        batch_op.drop_index("ix_alert_project_open")

    op.drop_table("alert")
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.drop_index("ix_send_project_time")
        batch_op.drop_index("ix_send_project_state_time")
        batch_op.drop_index("ix_send_project_recipient_time")
        batch_op.drop_index("ix_send_project_message_id")
        batch_op.drop_index(batch_op.f("ix_send_evidence_id"))

    op.drop_table("send")
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_index("ix_evidence_project_recipient")
        batch_op.drop_index("ix_evidence_project_original_message_id")
        batch_op.drop_index(batch_op.f("ix_evidence_message_pk"))

    op.drop_table("evidence")
    with op.batch_alter_table("send_import", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_send_import_project"))

    op.drop_table("send_import")
    op.drop_table("reconcile_run")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_project_class")
        batch_op.drop_index(batch_op.f("ix_message_project"))

    op.drop_table("message")
    op.drop_table("mailbox_health")
    op.drop_table("mailbox_cursor")
    with op.batch_alter_table("alert_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_outbox_group")
        batch_op.drop_index("ix_alert_outbox_due")

    op.drop_table("alert_outbox")
