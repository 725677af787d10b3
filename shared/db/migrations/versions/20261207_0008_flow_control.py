"""flow control: workflows' flow fields, runs' waiting reason

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-07 01:45:00

`workflows.flow` holds `concurrency`, `throttle`, `debounce`, `priority` (docs/flow-control.md).
`workflow_runs.waiting_reason`/`waiting_detail` say why a queued or waiting run does not run
(set by the worker when it holds a run back, and when a run parks).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "workflows",
        sa.Column(
            "flow", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
    )
    op.add_column("workflow_runs", sa.Column("waiting_reason", sa.String(32), nullable=True))
    op.add_column("workflow_runs", sa.Column("waiting_detail", postgresql.JSONB(), nullable=True))
    # The census of waiting runs by reason (services/worker/flow/census.py) reads only these.
    op.create_index(
        "ix_workflow_runs_waiting_reason",
        "workflow_runs",
        ["waiting_reason"],
        postgresql_where=sa.text("status IN ('queued', 'waiting') AND waiting_reason IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_runs_waiting_reason", table_name="workflow_runs")
    op.drop_column("workflow_runs", "waiting_detail")
    op.drop_column("workflow_runs", "waiting_reason")
    op.drop_column("workflows", "flow")
