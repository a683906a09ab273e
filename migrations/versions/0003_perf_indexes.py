"""indexes and the input digest for incremental reconciliation

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

The (project, id) and (project, read_at) indexes let a reconciliation pass read the highest
send and evidence id and the latest message reading of a project without scanning its rows.
``reconcile_run.inputs`` stores what the pass read (counts and highest ids of sends, evidence
and messages, the latest reading, a digest of the rules), which the next pass compares to
skip matching, or to match only the recipients of added rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reconcile_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inputs", sa.String(length=255), nullable=True))
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.create_index("ix_send_project_id", ["project", "id"], unique=False)
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.create_index("ix_evidence_project_id", ["project", "id"], unique=False)
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_project_read_at", ["project", "read_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_project_read_at")
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_index("ix_evidence_project_id")
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.drop_index("ix_send_project_id")
    with op.batch_alter_table("reconcile_run", schema=None) as batch_op:
        batch_op.drop_column("inputs")
