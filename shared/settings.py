"""Runtime configuration, read once from the environment.

Every service reads the same variables (docs/ARCHITECTURE.md has the table). Secrets that have no
value in local mode are generated into the data folder so `make up` works with no setup; in
production they must be given, and the process refuses to start without them.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/automateos"


class Settings(BaseSettings):
    """All configuration of every AutomateOS process."""

    model_config = SettingsConfigDict(env_prefix="AUTOMATEOS_", extra="ignore")

    env: Literal["local", "production"] = "local"
    host: str = "127.0.0.1"
    port: int | None = None
    data_dir: Path = Path(".data")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("DATABASE_URL", "AUTOMATEOS_DATABASE_URL"),
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "AUTOMATEOS_REDIS_URL"),
    )
    db_pool_size: int = 10
    # The API services' bounds on one wait for PostgreSQL (connecting, a pooled connection, one
    # round trip), so a stopped or frozen database is a quick 503, never a hung request.
    db_connect_timeout_seconds: float = Field(2.0, gt=0)
    db_query_timeout_seconds: float = Field(2.0, gt=0)

    auth_url: str = "http://127.0.0.1:8001"
    workflows_url: str = "http://127.0.0.1:8002"
    public_url: str = "http://127.0.0.1:8003"

    internal_token: str = ""
    webhook_key: str = ""
    signing_keys_dir: Path | None = None

    jwt_issuer: str = "automateos"
    jwt_audience: str = "automateos"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 14 * 24 * 3600
    login_max_failures: int = 5
    login_lockout_seconds: int = 900

    queue_name: str = "automateos"
    job_timeout_seconds: int = 900
    max_body_bytes: int = 10 * 1024 * 1024
    dedupe_ttl_seconds: int = 7 * 24 * 3600
    hook_cache_seconds: float = 0.5
    egress_allowlist: str = ""
    metrics_port: int = 9100
    step_payload_max_bytes: int = 64 * 1024

    @field_validator("database_url")
    @classmethod
    def _use_asyncpg(cls, value: str) -> str:
        # Operators paste the URL their provider gives them; the driver is our business.
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value[len(prefix) :]
        return value

    @field_validator("max_body_bytes")
    @classmethod
    def _cap_body(cls, value: int) -> int:
        if not 1 <= value <= 10 * 1024 * 1024:
            raise ValueError("AUTOMATEOS_MAX_BODY_BYTES must be between 1 and 10485760")
        return value

    @model_validator(mode="after")
    def _secrets_present(self) -> Settings:
        if self.env == "production":
            missing = [
                name
                for name, value in (
                    ("AUTOMATEOS_INTERNAL_TOKEN", self.internal_token),
                    ("AUTOMATEOS_WEBHOOK_KEY", self.webhook_key),
                )
                if len(value) < 32
            ]
            if missing:
                raise ValueError(f"production needs secrets of >= 32 characters: {missing}")
        return self

    @property
    def keys_dir(self) -> Path:
        """Folder of the Ed25519 signing keys (PEM files; file stem = key id)."""
        return self.signing_keys_dir or self.data_dir / "keys"

    def resolved_internal_token(self) -> str:
        """The service-to-service secret, generated once per data folder in local mode."""
        return self.internal_token or _local_secret(self.data_dir / "internal-token")

    def resolved_webhook_key(self) -> bytes:
        """The key webhook tokens are derived from, generated once per data folder locally."""
        return (self.webhook_key or _local_secret(self.data_dir / "webhook-key")).encode()


def _local_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # Write-then-rename so two services starting together cannot read a half-written file.
    tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    tmp.write_text(value)
    tmp.chmod(0o600)
    try:
        path.hardlink_to(tmp)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached: the environment does not change under us)."""
    return Settings()
