"""index runs by owner, newest first (GET /runs across workflows)

Revision ID: 0011
Revises: 0004
Create Date: 2026-12-07 01:40:00

`GET /runs` pages one owner's runs by id descending. With only the owner index, every page
sorts all of the owner's runs; this index hands them out in order, so a page reads `limit` rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # CONCURRENTLY cannot run inside a transaction; it keeps writes flowing while it builds.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_workflow_runs_owner_id_id",
            "workflow_runs",
            ["owner_id", sa.text("id DESC")],
            unique=False,
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_workflow_runs_owner_id_id",
            table_name="workflow_runs",
            postgresql_concurrently=True,
            if_exists=True,
        )
