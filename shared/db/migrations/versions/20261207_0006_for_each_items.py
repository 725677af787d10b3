"""run_step_items: the items of for-each steps

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-07 01:40:00

A new table, empty at creation: no lock on existing tables beyond the foreign key's.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_step_items",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("resume_output", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id", "position"],
            ["run_steps.run_id", "run_steps.position"],
            name="fk_run_step_items_step",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "position", "item_index", name="pk_run_step_items"),
    )


def downgrade() -> None:
    op.drop_table("run_step_items")
