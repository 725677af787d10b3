"""credentials, schedule ticks, retention overrides; webhook secrets sealed

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 20:45:00

Existing webhook signature secrets are encrypted in place under the newest key of
`AUTOMATEOS_ENCRYPTION_KEYS` (the migration Job gets the same Secret as the services). The
keys are read only when there is a secret to convert, so a fresh database needs none.
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.crypto import Keyring, hook_secret_context, is_sealed
from shared.settings import get_settings

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNED = sa.text(
    "SELECT id, trigger FROM workflows WHERE trigger -> 'signature' ->> 'secret' IS NOT NULL"
)
_SET_TRIGGER = sa.text("UPDATE workflows SET trigger = CAST(:trigger AS jsonb) WHERE id = :id")


def _convert_secrets(*, seal: bool) -> None:
    conn = op.get_bind()
    keyring: Keyring | None = None
    for workflow_id, trigger in conn.execute(_SIGNED).all():
        secret = trigger["signature"]["secret"]
        if is_sealed(secret) == seal:
            continue
        keyring = keyring or get_settings().keyring()
        context = hook_secret_context(str(workflow_id))
        changed: dict[str, Any] = {**trigger, "signature": dict(trigger["signature"])}
        changed["signature"]["secret"] = (
            keyring.seal(secret.encode(), context)
            if seal
            else keyring.open(secret, context).decode()
        )
        conn.execute(_SET_TRIGGER, {"id": workflow_id, "trigger": json.dumps(changed)})


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("data", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_credentials_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        sa.UniqueConstraint("owner_id", "name", name="uq_credentials_owner_name"),
    )
    op.add_column("workflows", sa.Column("next_run_at", sa.DateTime(timezone=True)))
    op.add_column(
        "workflows",
        sa.Column(
            "retention",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
    )
    op.create_index(
        "ix_workflows_next_run_at",
        "workflows",
        ["next_run_at"],
        postgresql_where=sa.text("next_run_at IS NOT NULL"),
    )
    _convert_secrets(seal=True)


def downgrade() -> None:
    _convert_secrets(seal=False)
    op.drop_index("ix_workflows_next_run_at", table_name="workflows")
    op.drop_column("workflows", "retention")
    op.drop_column("workflows", "next_run_at")
    op.drop_table("credentials")
