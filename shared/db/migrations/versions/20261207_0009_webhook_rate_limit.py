"""a workflow's webhook rate limit

Revision ID: 0009
Revises: 0004
Create Date: 2026-12-07 01:40:00

`workflows.rate_limit`: `{"per_s": R, "burst": B}`, the token bucket ingest applies to the
workflow's webhook (docs/flow-control.md); NULL takes the deployment default.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "workflows",
        sa.Column("rate_limit", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("workflows", "rate_limit")
