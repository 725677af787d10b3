"""index runs in progress by start time (the worker's recovery sweep)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 15:30:00

The sweep asks every 30 s for runs still `running` that started long ago. Partial, so it
holds only the runs in flight and stays tiny however large the history grows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # CONCURRENTLY cannot run inside a transaction; it keeps writes flowing while it builds.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_workflow_runs_running_started",
            "workflow_runs",
            ["started_at"],
            unique=False,
            postgresql_where=sa.text("status = 'running'"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_workflow_runs_running_started",
            table_name="workflow_runs",
            postgresql_concurrently=True,
            if_exists=True,
        )
