"""refresh token families; hosts a credential may be sent to

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-07 01:40:00

`refresh_tokens.family_id` links every token rotated from one login, so logging out revokes
them all; existing tokens start their own family. `credentials.allowed_hosts` (NULL: any host)
lists the hosts a credential may be sent to.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("refresh_tokens", sa.Column("family_id", sa.Uuid(), nullable=True))
    op.execute("UPDATE refresh_tokens SET family_id = jti WHERE family_id IS NULL")
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.add_column(
        "credentials",
        sa.Column("allowed_hosts", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("credentials", "allowed_hosts")
    op.drop_index("ix_refresh_tokens_family_id", table_name="refresh_tokens")
    op.drop_column("refresh_tokens", "family_id")
