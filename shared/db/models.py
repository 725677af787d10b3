"""The tables. Their shape changes only through an Alembic migration in migrations/versions/."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKeyConstraint,
    Index,
    MetaData,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

# Deterministic constraint names, so migrations can name what they alter or drop.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata

RUN_STATUSES = ("queued", "running", "waiting", "succeeded", "failed", "cancelled")
STEP_STATUSES = ("succeeded", "failed", "skipped", "waiting")


def utcnow() -> datetime:
    """Timezone-aware now; every timestamp column is `timestamptz`."""
    return datetime.now(UTC)


def _ts(**kwargs: Any) -> Any:
    return Field(sa_type=DateTime(timezone=True), **kwargs)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # Stored lower-cased so uniqueness is case-insensitive without citext.
    email: str = Field(max_length=320, unique=True)
    password_hash: str
    created_at: datetime = _ts(default_factory=utcnow)


class RefreshToken(SQLModel, table=True):
    """One row per issued refresh token, so refresh can rotate and revoke them."""

    __tablename__ = "refresh_tokens"

    jti: uuid.UUID = Field(primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    # The jti of the login that started the chain of rotations: logout revokes the family.
    family_id: uuid.UUID | None = Field(default=None, index=True)
    expires_at: datetime = _ts()
    revoked_at: datetime | None = _ts(default=None)
    created_at: datetime = _ts(default_factory=utcnow)


class Workflow(SQLModel, table=True):
    __tablename__ = "workflows"
    __table_args__ = (
        Index("ix_workflows_owner_created", "owner_id", "created_at", "id"),
        Index(
            "ix_workflows_next_run_at",
            "next_run_at",
            postgresql_where=text("next_run_at IS NOT NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    active: bool = True
    version: int = 1
    nodes: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONB)
    # Holds the signature secret: never serialised by the API as it is stored.
    trigger: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    webhook_token_hash: str = Field(max_length=64, unique=True)
    webhook_nonce: str = Field(max_length=64)
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)
    # The next tick of a schedule trigger; NULL when inactive or not scheduled. The scheduler
    # claims a tick by moving it on (services/worker/scheduler.py).
    next_run_at: datetime | None = _ts(default=None)
    # Per-workflow overrides of run retention: {"days", "max_runs", "keep_details"}.
    retention: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    # The workflow (id or name, as given) whose run starts when a run of this one fails.
    on_error: str | None = Field(default=None, max_length=200)
    # The webhook's token bucket, {"per_s", "burst"}; NULL: the ingest default.
    rate_limit: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    # Flow control: {"concurrency", "throttle", "debounce", "priority"} (shared/flow.py).
    flow: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)


class Credential(SQLModel, table=True):
    """A user's secret for nodes to use; `data` is sealed (shared/crypto.py), never plaintext."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_credentials_owner_name"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    name: str = Field(max_length=64)
    type: str = Field(max_length=16)
    # Which data fields are set (shown by the API; the values never are).
    fields: list[str] = Field(default_factory=list, sa_type=JSONB)
    data: str
    # The hosts the credential may be sent to (exact names or `*.suffix`); None: any host.
    allowed_hosts: list[str] | None = Field(default=None, sa_type=JSONB)
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)


class WorkflowVersion(SQLModel, table=True):
    """An immutable snapshot: a run executes the version it was accepted under."""

    __tablename__ = "workflow_versions"

    workflow_id: uuid.UUID = Field(foreign_key="workflows.id", ondelete="CASCADE", primary_key=True)
    version: int = Field(primary_key=True)
    nodes: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONB)
    created_at: datetime = _ts(default_factory=utcnow)


class WorkflowRun(SQLModel, table=True):
    __tablename__ = "workflow_runs"
    __table_args__ = (
        # Stops a second run for the same delivery even when Redis lost the dedupe key.
        UniqueConstraint("workflow_id", "idempotency_key", name="uq_workflow_runs_idempotency"),
        Index("ix_workflow_runs_workflow_id_id", "workflow_id", text("id DESC")),
        # GET /runs: one owner's runs across workflows, newest first.
        Index("ix_workflow_runs_owner_id_id", "owner_id", text("id DESC")),
        # The worker's recovery sweep looks for runs left `running`; only those are indexed.
        Index(
            "ix_workflow_runs_running_started",
            "started_at",
            postgresql_where=text("status = 'running'"),
        ),
        # ...and for the due-run poller, which resumes parked runs from their resume_at.
        Index(
            "ix_workflow_runs_waiting_resume",
            "resume_at",
            postgresql_where=text("status = 'waiting'"),
        ),
        # A parent's `call_workflow` steps show their child runs.
        Index(
            "ix_workflow_runs_parent_run_id",
            "parent_run_id",
            postgresql_where=text("parent_run_id IS NOT NULL"),
        ),
        # Cancelled parked children until their last continuation (services/worker/dueruns.py).
        Index(
            "ix_workflow_runs_cancelled_resume",
            "resume_at",
            postgresql_where=text("status = 'cancelled' AND resume_at IS NOT NULL"),
        ),
        # The census counts waiting runs by reason (services/worker/flow/census.py).
        Index(
            "ix_workflow_runs_waiting_reason",
            "waiting_reason",
            postgresql_where=text("status IN ('queued', 'waiting') AND waiting_reason IS NOT NULL"),
        ),
    )

    id: uuid.UUID = Field(primary_key=True)
    workflow_id: uuid.UUID = Field(foreign_key="workflows.id", ondelete="CASCADE")
    owner_id: uuid.UUID = Field(index=True)
    workflow_version: int
    status: str = Field(default="queued", max_length=16)
    trigger: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    attempt: int = 0
    error: str | None = None
    idempotency_key: str | None = Field(default=None, max_length=255)
    retry_of: uuid.UUID | None = None
    accepted_at: datetime = _ts(default_factory=utcnow)
    started_at: datetime | None = _ts(default=None)
    finished_at: datetime | None = _ts(default=None)
    duration_ms: int | None = None
    # Parked runs: when the timer fires, and the step it waits on (kept after the resume, so a
    # redelivered continuation can take its run back; a first delivery never takes it then).
    resume_at: datetime | None = _ts(default=None)
    waiting_step: int | None = None
    # A `call_workflow` child: its parent run, the parent's step that started it, and how
    # deeply it is nested (0 for a run nobody called).
    parent_run_id: uuid.UUID | None = None
    parent_step: int | None = None
    depth: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    # An error workflow's run (and its children): the failed run it handles. Such runs never
    # start another error workflow.
    error_of: uuid.UUID | None = None
    # A replay: the run whose recorded steps it reused.
    replay_of: uuid.UUID | None = None
    # Why a queued or waiting run does not run (shared/flow.py WAITING_REASONS), and details.
    waiting_reason: str | None = Field(default=None, max_length=32)
    waiting_detail: dict[str, Any] | None = Field(default=None, sa_type=JSONB, nullable=True)
    # The queue a parked run resumes on: its deployment's due-run poller takes only those.
    queue: str | None = Field(default=None, max_length=200)


class RunStep(SQLModel, table=True):
    __tablename__ = "run_steps"
    # Unique: checkpoints upsert a step by its position.
    __table_args__ = (Index("uq_run_steps_run_position", "run_id", "position", unique=True),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    run_id: uuid.UUID = Field(foreign_key="workflow_runs.id", ondelete="CASCADE")
    position: int
    node_id: str = Field(max_length=64)
    type: str = Field(max_length=64)
    status: str = Field(max_length=16)
    input: Any = Field(default=None, sa_type=JSONB, nullable=True)
    output: Any = Field(default=None, sa_type=JSONB, nullable=True)
    error: str | None = None
    attempt: int = 1
    started_at: datetime | None = _ts(default=None)
    duration_ms: int | None = None
    # The step's whole output while its run is unfinished, for a later delivery to resume from
    # (effectful and parked steps only); the run's final write clears it.
    resume_output: Any = Field(default=None, sa_type=JSONB, nullable=True)


class RunStepItem(SQLModel, table=True):
    """One item of a for-each step; deleted with its step (retention keeps them together)."""

    __tablename__ = "run_step_items"
    __table_args__ = (
        ForeignKeyConstraint(
            ["run_id", "position"],
            ["run_steps.run_id", "run_steps.position"],
            ondelete="CASCADE",
            name="fk_run_step_items_step",
        ),
    )

    run_id: uuid.UUID = Field(primary_key=True)
    position: int = Field(primary_key=True)
    item_index: int = Field(primary_key=True)
    status: str = Field(max_length=16)
    output: Any = Field(default=None, sa_type=JSONB, nullable=True)
    error: str | None = None
    started_at: datetime | None = _ts(default=None)
    duration_ms: int | None = None
    # As for steps: the whole output of an effectful item until the run ends, for reuse.
    resume_output: Any = Field(default=None, sa_type=JSONB, nullable=True)
