"""The queue a parked run resumes on.

A parked run's resume time is in PostgreSQL only, and each deployment's due-run poller enqueues
continuations on its own queue: it must take only its own queue's runs. A cancelled parked
child keeps a resume time until its last continuation tells its parent.

Revision ID: 0012
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("workflow_runs", sa.Column("queue", sa.String(length=200), nullable=True))
    # Cancelled parked children wait here for their last continuation (a handful at a time).
    op.create_index(
        "ix_workflow_runs_cancelled_resume",
        "workflow_runs",
        ["resume_at"],
        postgresql_where=sa.text("status = 'cancelled' AND resume_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_runs_cancelled_resume", table_name="workflow_runs")
    op.drop_column("workflow_runs", "queue")
