"""instances, mailbox leases, work claims, finished imports, 64-bit IMAP numbers

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import config.database

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Columns holding IMAP UIDs and UIDVALIDITY values, which are unsigned 32-bit numbers.
IMAP_NUMBER_COLUMNS = {
    "message": ("uidvalidity", "uid"),
    "mailbox_cursor": ("uidvalidity", "last_uid"),
}


def upgrade() -> None:
    op.create_table(
        "instance",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", config.database.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "mailbox_lease",
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("folder", sa.String(length=255), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("acquired_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("renewed_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("project", "folder"),
    )
    op.create_table(
        "work_claim",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", config.database.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )

    with op.batch_alter_table("send_import", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("finished_at", config.database.UTCDateTime(timezone=True), nullable=True)
        )
    # The daemon treated every import recorded before this revision as done, so they count as
    # finished.
    op.execute("UPDATE send_import SET finished_at = imported_at")

    # SQLite's INTEGER already holds 64 bits; only PostgreSQL's integer is too small.
    if op.get_bind().dialect.name == "postgresql":
        for table, columns in IMAP_NUMBER_COLUMNS.items():
            for column in columns:
                op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, columns in IMAP_NUMBER_COLUMNS.items():
            for column in columns:
                op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
    with op.batch_alter_table("send_import", schema=None) as batch_op:
        batch_op.drop_column("finished_at")
    op.drop_table("work_claim")
    op.drop_table("mailbox_lease")
    op.drop_table("instance")
