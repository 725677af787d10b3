"""`automateos.Client` and `AsyncClient` against the real stack: typed results, typed errors
carrying the API's message, and token refresh."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from automateos import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    MemoryTokenStore,
    NotFoundError,
    NotLoggedIn,
    Tokens,
    TransportError,
    ValidationError,
    Workflow,
)
from scripts.localinfra import free_port
from tests.cli.conftest import LOG
from tests.conftest import ApiUser
from tests.fixtures.stack import Stack


class TestSync:
    def test_workflow_run_and_history(self, client: Client) -> None:
        workflow = client.create_workflow({"name": "sdk", "nodes": [LOG]})
        assert isinstance(workflow, Workflow)
        assert workflow.version == 1
        accepted = client.run_workflow(workflow.id, {"n": 1})
        run = client.wait_for_run(accepted.run_id, timeout=30, poll_interval=0.1)
        assert (run.status, run.trigger["body"], [s.node_id for s in run.steps]) == (
            "succeeded",
            {"n": 1},
            ["note"],
        )
        assert [r.id for r in client.iter_runs(workflow_id=workflow.id)] == [run.id]
        since = datetime.now(UTC) - timedelta(minutes=5)
        assert [r.id for r in client.list_runs(status="succeeded", since=since).items] == [run.id]
        renamed = client.update_workflow(workflow.id, description="changed")
        assert renamed.version == 2
        assert [w.id for w in client.iter_workflows()] == [workflow.id]

    def test_validation_error_names_the_node_and_field(self, client: Client) -> None:
        bad = {"name": "bad", "nodes": [{"id": "call", "type": "http_request", "params": {}}]}
        with pytest.raises(ValidationError) as caught:
            client.create_workflow(bad, dry_run=True)
        [issue] = caught.value.issues
        assert (caught.value.status_code, issue.node, issue.field) == (422, "call", "params.url")
        assert "node call, field params.url" in caught.value.message

    def test_errors_are_typed_and_carry_the_api_message(self, client: Client) -> None:
        with pytest.raises(NotFoundError) as missing:
            client.get_run(uuid.uuid4())
        assert missing.value.status_code == 404
        assert missing.value.message
        workflow = client.create_workflow({"name": "ended", "nodes": [LOG]})
        run = client.wait_for_run(client.run_workflow(workflow.id).run_id, timeout=30)
        with pytest.raises(ConflictError, match="already ended"):
            client.cancel_run(run.id)

    def test_unreachable_service_is_a_transport_error(self, user: ApiUser) -> None:
        dead = f"http://127.0.0.1:{free_port()}"
        with Client(auth_url=dead, api_url=dead) as offline, pytest.raises(TransportError):
            offline.login(user.email, user.password)

    def test_no_tokens_is_not_logged_in(self, stack: Stack) -> None:
        with Client(api_url=stack.url("workflows")) as anonymous, pytest.raises(NotLoggedIn):
            anonymous.list_workflows()


class TestRefresh:
    def test_expired_access_token_is_refreshed_and_stored(self, client: Client) -> None:
        before = client.tokens
        assert before is not None
        store = client.token_store
        store.save(before.model_copy(update={"expires_at": 0.0}))
        client.me()
        after = store.load()
        assert after is not None
        assert after.access_token != before.access_token
        assert not after.expired()

    def test_refused_access_token_is_refreshed_once(self, stack: Stack, user: ApiUser) -> None:
        forged = Tokens(
            access_token="not-a-token",
            refresh_token=user.tokens["refresh_token"],
            expires_at=datetime.now(UTC).timestamp() + 600,
        )
        store = MemoryTokenStore()
        with Client(
            auth_url=stack.url("auth"),
            api_url=stack.url("workflows"),
            tokens=forged,
            token_store=store,
        ) as client:
            assert client.me().email == user.email
        refreshed = store.load()
        assert refreshed is not None
        assert refreshed.access_token != "not-a-token"

    def test_refused_refresh_token_ends_the_session(self, stack: Stack) -> None:
        dead = Tokens(access_token="x", refresh_token="y", expires_at=0.0)
        with Client(
            auth_url=stack.url("auth"), api_url=stack.url("workflows"), tokens=dead
        ) as client:
            with pytest.raises(AuthenticationError, match="log in again"):
                client.list_workflows()
            assert client.tokens is None


class TestAsync:
    async def test_same_calls_awaited(self, stack: Stack, user: ApiUser) -> None:
        async with AsyncClient(
            auth_url=stack.url("auth"), api_url=stack.url("workflows")
        ) as client:
            await client.login(user.email, user.password)
            workflow = await client.create_workflow({"name": "async", "nodes": [LOG]})
            accepted = await client.run_workflow(workflow.id, [1, 2])
            run = await client.wait_for_run(accepted.run_id, timeout=30, poll_interval=0.1)
            assert run.status == "succeeded"
            assert [r.id async for r in client.iter_runs(workflow_id=workflow.id)] == [run.id]
            with pytest.raises(ValidationError):
                await client.list_runs(status="nope")
            store = client.token_store
            tokens = store.load()
            assert tokens is not None
            store.save(tokens.model_copy(update={"expires_at": 0.0}))
            assert (await client.me()).email == user.email
            assert client.tokens is not None
            assert client.tokens.access_token != tokens.access_token
