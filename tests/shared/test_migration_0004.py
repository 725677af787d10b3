"""Migration 0004 seals the webhook signature secrets stored before encryption existed."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator

import pytest
from alembic import command

from shared.crypto import Keyring, generate_key_entry, hook_secret_context, is_sealed
from shared.db.migrate import alembic_config, upgrade
from shared.settings import get_settings
from tests.fixtures.database import Database
from tests.fixtures.servers import Infra

SECRET = "legacy-plaintext-secret-" + secrets.token_hex(4)
KEYS = generate_key_entry("mig")


@pytest.fixture
def old_database(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if infra.postgres is None:
        pytest.skip("needs the embedded PostgreSQL to create a database")
    monkeypatch.setenv("AUTOMATEOS_ENCRYPTION_KEYS", KEYS)
    get_settings.cache_clear()
    url = infra.postgres.create_database(f"mig_{secrets.token_hex(4)}")
    upgrade(url, "0003")
    yield url
    get_settings.cache_clear()


def test_existing_secrets_are_sealed_and_a_downgrade_opens_them(old_database: str) -> None:
    db = Database(old_database)
    owner, workflow = uuid.uuid4(), uuid.uuid4()
    db.execute(
        "INSERT INTO users (id, email, password_hash, created_at)"
        " VALUES ($1, 'm@x.org', 'x', now())",
        owner,
    )
    trigger = {"type": "webhook", "signature": {"scheme": "github", "secret": SECRET}}
    db.execute(
        "INSERT INTO workflows (id, owner_id, name, description, active, version, nodes, trigger,"
        " webhook_token_hash, webhook_nonce, created_at, updated_at) VALUES ($1, $2, 'w', '',"
        " true, 1, '[]', $3::jsonb, $4, 'n', now(), now())",
        workflow,
        owner,
        json.dumps(trigger),
        secrets.token_hex(32),
    )

    upgrade(old_database, "0004")
    stored = json.loads(db.fetchval("SELECT trigger::text FROM workflows WHERE id = $1", workflow))
    sealed = stored["signature"]["secret"]
    assert is_sealed(sealed)
    opened = Keyring.parse(KEYS).open(sealed, hook_secret_context(str(workflow)))
    assert opened.decode() == SECRET
    assert stored["signature"]["scheme"] == "github"

    command.downgrade(alembic_config(old_database), "0003")
    back = json.loads(db.fetchval("SELECT trigger::text FROM workflows WHERE id = $1", workflow))
    assert back["signature"]["secret"] == SECRET
