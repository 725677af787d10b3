"""Runtime configuration, read once from the environment.

Every service reads the same variables (docs/ARCHITECTURE.md has the table). Secrets that have no
value in local mode are generated into the data folder so `make up` works with no setup; in
production they must be given, and the process refuses to start without them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.crypto import Keyring, generate_key_entry

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
    # Failed logins per (account, client) and per client within the lockout window.
    login_max_failures: int = 5
    login_max_failures_per_client: int = 20
    login_lockout_seconds: int = 900
    # argon2 hashes at once per auth process (each holds 19 MiB), and how long a login waits
    # for one before it is answered 503 with Retry-After.
    password_hash_concurrency: int = Field(4, ge=1)
    password_hash_queue_seconds: float = Field(2.0, gt=0)
    # Comma-separated addresses/CIDRs of the proxies (the Ingress controller) whose
    # X-Forwarded-For names the client; empty: the peer address is the client.
    trusted_proxies: str = ""

    # Every HTTP service (shared/http_protocol.py): a request's line and headers, how many
    # header fields, and how long a client may take to send the head and then the body.
    http_max_header_bytes: int = Field(32 * 1024, ge=1024)
    http_max_headers: int = Field(100, ge=10)
    http_head_timeout_seconds: float = Field(10.0, gt=0)
    http_body_timeout_seconds: float = Field(30.0, gt=0)

    queue_name: str = "automateos"
    job_timeout_seconds: int = 900
    max_body_bytes: int = 10 * 1024 * 1024  # webhooks and manual runs
    api_max_body_bytes: int = Field(1024 * 1024, ge=1024)  # workflow definitions, credentials
    dedupe_ttl_seconds: int = 7 * 24 * 3600
    hook_cache_seconds: float = 0.5
    # Overload answers (docs/flow-control.md): ingest answers 503 + Retry-After above this many
    # queued runs, or once Redis uses this share of its `maxmemory`, read every
    # `ingest_overload_check_seconds` (not per request). The default backlog fits the chart's
    # Redis (384 MB): about 2 KiB per queued run plus its body.
    ingest_max_backlog: int = Field(50_000, ge=1)
    ingest_max_memory_ratio: float = Field(0.9, gt=0, le=1)
    ingest_overload_check_seconds: float = Field(0.25, gt=0, le=10)
    # Each webhook's token bucket per ingest process (a workflow's `rate_limit` overrides it):
    # beyond it, 429 + Retry-After.
    ingest_rate_per_s: float = Field(200.0, gt=0)
    ingest_rate_burst: int = Field(400, ge=1)
    # Resume-callback bodies stored in Redis and not yet taken by their runs, per run owner.
    callback_storage_max_bytes_per_user: int = Field(64 * 1024 * 1024, ge=1024)
    egress_allowlist: str = ""
    metrics_port: int = 9100
    step_payload_max_bytes: int = 64 * 1024
    # Nodes of one run that execute at once along a graph's parallel branches (docs/nodes.md).
    run_max_parallel: int = Field(8, ge=1, le=256)
    # Recorded step inputs and outputs per workflow per UTC day; beyond it, runs are recorded
    # with markers in their place (services/worker/engine/data_budget.py).
    run_data_budget_bytes_per_day: int = Field(256 * 1024 * 1024, ge=1)

    # `<id>:<base64 32 bytes>`, comma-separated, newest first (shared/crypto.py).
    encryption_keys: str = Field("", repr=False)

    # Schedules run in the worker supervisors (one active through a lease); off in test
    # stacks that share one database, so only the test that wants ticks gets them.
    scheduler_enabled: bool = True
    # Schedules: a tick more than this late (the scheduler was down) is skipped, not run.
    schedule_misfire_grace_seconds: float = Field(60.0, ge=0)
    schedule_poll_seconds: float = Field(0.2, gt=0, le=10)
    # Schedule quotas per user, checked at save (docs/schedules.md): the shortest `every`, how
    # many active schedules, and how many scheduled runs per minute they may start together.
    schedule_min_interval_seconds: float = Field(10.0, ge=1)
    schedule_max_active_per_user: int = Field(50, ge=1)
    schedule_max_runs_per_minute_per_user: float = Field(60.0, gt=0)

    # Run history retention (services/worker/retention.py); workflows may override both.
    run_retention_days: float = Field(14, gt=0)
    run_retention_max_per_workflow: int = Field(10_000, ge=1)
    run_retention_interval_seconds: float = Field(60.0, gt=0)
    run_retention_batch: int = Field(500, ge=1, le=50_000)
    # After each batch the pruner rests this many times as long as the batch took.
    run_retention_rest_ratio: float = Field(2.0, ge=0)

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

    @field_validator("encryption_keys")
    @classmethod
    def _keys_parse(cls, value: str) -> str:
        # Refuse to start on a malformed key rather than fail on the first credential.
        if value.strip():
            Keyring.parse(value)
        return value

    @property
    def keys_dir(self) -> Path:
        """Folder of the Ed25519 signing keys (PEM files; file stem = key id)."""
        return self.signing_keys_dir or self.data_dir / "keys"

    def resolved_internal_token(self) -> str:
        """The service-to-service secret, generated once per data folder in local mode.

        Only the processes that use it ask (auth, workflows, ingest), so only they need it: in
        production they refuse to start without one of at least 32 characters.
        """
        return self._production_secret("AUTOMATEOS_INTERNAL_TOKEN", self.internal_token) or (
            _local_secret(self.data_dir / "internal-token")
        )

    def resolved_webhook_key(self) -> bytes:
        """The key webhook tokens are derived from, generated once per data folder locally."""
        key = self._production_secret("AUTOMATEOS_WEBHOOK_KEY", self.webhook_key) or (
            _local_secret(self.data_dir / "webhook-key")
        )
        return key.encode()

    def _production_secret(self, name: str, value: str) -> str:
        if self.env == "production" and len(value) < 32:
            raise ValueError(f"production needs {name} of >= 32 characters")
        return value

    def keyring(self) -> Keyring:
        """The encryption keys; generated once per data folder in local mode.

        Raises KeyringError when the configured value is malformed.
        """
        if self.env == "production" and not self.encryption_keys.strip():
            # Only the processes that decrypt ask, so only they need the keys.
            raise ValueError("production needs AUTOMATEOS_ENCRYPTION_KEYS")
        text = self.encryption_keys or _local_secret(
            self.data_dir / "encryption-keys", generate_key_entry
        )
        return Keyring.parse(text)


def _local_secret(path: Path, generate: Callable[[], str] | None = None) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = generate() if generate else secrets.token_urlsafe(48)
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
