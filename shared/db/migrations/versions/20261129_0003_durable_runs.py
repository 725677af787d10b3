"""durable runs: parked runs, step checkpoints

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 20:40:00

Engine v2 writes a run's effectful steps as they finish and parks long waits. So:
- `workflow_runs.resume_at` / `waiting_step`: when a parked run resumes, and at which step;
- `run_steps.resume_output`: a step's whole output while its run is unfinished (the recorded
  `output` is redacted and truncated, a resumed run needs the real one);
- steps are upserted by (run_id, position), so that pair becomes unique;
- a partial index finds parked runs whose continuation is overdue.
Adding nullable columns is instant; the indexes are built CONCURRENTLY so runs keep flowing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("workflow_runs", sa.Column("resume_at", sa.DateTime(timezone=True)))
    op.add_column("workflow_runs", sa.Column("waiting_step", sa.Integer()))
    op.add_column("run_steps", sa.Column("resume_output", postgresql.JSONB()))
    with op.get_context().autocommit_block():
        op.create_index(
            "uq_run_steps_run_position",
            "run_steps",
            ["run_id", "position"],
            unique=True,
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.drop_index(
            "ix_run_steps_run_position",
            table_name="run_steps",
            postgresql_concurrently=True,
            if_exists=True,
        )
        op.create_index(
            "ix_workflow_runs_waiting_resume",
            "workflow_runs",
            ["resume_at"],
            postgresql_where=sa.text("status = 'waiting'"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_workflow_runs_waiting_resume",
            table_name="workflow_runs",
            postgresql_concurrently=True,
            if_exists=True,
        )
        op.create_index(
            "ix_run_steps_run_position",
            "run_steps",
            ["run_id", "position"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.drop_index(
            "uq_run_steps_run_position",
            table_name="run_steps",
            postgresql_concurrently=True,
            if_exists=True,
        )
    op.drop_column("run_steps", "resume_output")
    op.drop_column("workflow_runs", "waiting_step")
    op.drop_column("workflow_runs", "resume_at")
