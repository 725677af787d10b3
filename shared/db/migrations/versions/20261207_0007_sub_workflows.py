"""sub-workflows, error workflows, replays

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-07 01:40:00

- `workflows.on_error`: the workflow (id or name, as the user gave it) that runs when a run of
  this one fails;
- `workflow_runs.parent_run_id` / `parent_step` / `depth`: a `call_workflow` child run, the
  step of its parent that started it, and how deeply it is nested (0 for a top-level run);
- `workflow_runs.error_of`: on an error workflow's run (and its children), the failed run it
  handles; such runs never start another error workflow;
- `workflow_runs.replay_of`: the run a replay was made from.
Nullable columns and a constant default are instant; the index is built CONCURRENTLY.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("workflows", sa.Column("on_error", sa.String(length=200)))
    op.add_column("workflow_runs", sa.Column("parent_run_id", sa.Uuid()))
    op.add_column("workflow_runs", sa.Column("parent_step", sa.Integer()))
    op.add_column(
        "workflow_runs",
        sa.Column("depth", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("workflow_runs", sa.Column("error_of", sa.Uuid()))
    op.add_column("workflow_runs", sa.Column("replay_of", sa.Uuid()))
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_workflow_runs_parent_run_id",
            "workflow_runs",
            ["parent_run_id"],
            postgresql_where=sa.text("parent_run_id IS NOT NULL"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_workflow_runs_parent_run_id",
            table_name="workflow_runs",
            postgresql_concurrently=True,
            if_exists=True,
        )
    for column in ("replay_of", "error_of", "depth", "parent_step", "parent_run_id"):
        op.drop_column("workflow_runs", column)
    op.drop_column("workflows", "on_error")
