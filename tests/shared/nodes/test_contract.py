from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from shared.nodes import (
    NodeContext,
    NodeDefinition,
    NodeError,
    NodeSettings,
    NodeSpec,
    RetryableNodeError,
)


class Params(BaseModel):
    n: int


def _sync_run(ctx: NodeContext, params: Params) -> int:
    return params.n + 1


async def _async_run(ctx: NodeContext, params: Params) -> int:
    return params.n + 2


async def _ctx() -> NodeContext:
    return NodeContext("r", "w", "n", 1, httpx.AsyncClient(), logging.getLogger("t"))


class TestNodeSpec:
    def test_params_schema_is_the_models_json_schema(self):
        spec = NodeSpec("t", 1, "d", Params, _sync_run)
        assert spec.params_schema() == Params.model_json_schema()

    def test_spec_is_frozen(self):
        spec = NodeSpec("t", 1, "d", Params, _sync_run)
        with pytest.raises(AttributeError):
            spec.version = 2  # type: ignore[misc]

    async def test_execute_calls_sync_run(self):
        ctx = await _ctx()
        assert await NodeSpec("t", 1, "d", Params, _sync_run).execute(ctx, Params(n=1)) == 2
        await ctx.http.aclose()

    async def test_execute_awaits_async_run(self):
        ctx = await _ctx()
        assert await NodeSpec("t", 1, "d", Params, _async_run).execute(ctx, Params(n=1)) == 3
        await ctx.http.aclose()


class TestErrors:
    def test_node_error_is_not_retryable(self):
        error = NodeError("bad")
        assert (error.message, error.retryable) == ("bad", False)

    def test_retryable_error_carries_retry_after(self):
        error = RetryableNodeError("busy", retry_after=7.0)
        assert (error.retryable, error.retry_after) == (True, 7.0)
        assert isinstance(error, NodeError)


class TestSettings:
    def test_defaults(self):
        assert NodeSettings().model_dump() == {
            "retry": None,
            "timeout_s": None,
            "continue_on_fail": False,
            "condition": None,
            "after": None,
            "join": "all",
            "for_each": None,
            "concurrency": None,
        }

    def test_the_condition_is_written_if(self):
        settings = NodeSettings.model_validate({"if": "{{ trigger.body.ok }}"})
        assert settings.condition == "{{ trigger.body.ok }}"
        assert settings.model_dump(by_alias=True, exclude_none=True) == {
            "continue_on_fail": False,
            "join": "all",
            "if": "{{ trigger.body.ok }}",
        }

    def test_retry_backoff_defaults_to_one_second(self):
        retry = NodeSettings.model_validate({"retry": {"max": 2}}).retry
        assert retry is not None
        assert retry.backoff == 1.0

    def test_definition_forbids_extra_keys(self):
        with pytest.raises(ValidationError):
            NodeDefinition.model_validate({"id": "a", "type": "log", "paramz": {}})

    def test_definition_id_must_be_a_template_identifier(self):
        with pytest.raises(ValidationError):
            NodeDefinition.model_validate({"id": "1abc", "type": "log"})
