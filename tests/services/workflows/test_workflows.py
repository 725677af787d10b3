"""The workflow API over HTTP against a real workflows process, PostgreSQL and Redis."""

from __future__ import annotations

import base64
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.fixtures.database import Database
from tests.fixtures.stack import Stack
from tests.services.workflows.conftest import LOG_NODE, SECRET, create_workflow

FILTER_NODE = {
    "id": "only_big",
    "type": "filter",
    "params": {"all": [{"left": "{{ trigger.body.amount }}", "op": "gt", "right": 100}]},
}
HTTP_NODE = {
    "id": "post",
    "type": "http_request",
    "params": {"method": "POST", "url": "https://example.org/hook", "json": {"order": "{{ x }}"}},
}


def _signed(scheme: str = "github", **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "signature": {"scheme": scheme, "secret": SECRET, **extra}}


class TestCreate:
    def test_returns_the_workflow_as_version_1(self, api: httpx.Client) -> None:
        response = api.post(
            "/workflows",
            json={"name": "notify", "description": "d", "nodes": [FILTER_NODE, HTTP_NODE]},
        )
        assert response.status_code == 201
        body = response.json()
        assert body["name"] == "notify"
        assert body["description"] == "d"
        assert body["active"] is True
        assert body["version"] == 1
        assert body["nodes"] == [FILTER_NODE, HTTP_NODE]
        assert body["trigger"] == {"type": "webhook", "signature": None}
        assert body["created_at"] == body["updated_at"]
        assert response.headers["location"] == f"/workflows/{body['id']}"

    def test_webhook_url_is_public_url_plus_long_random_token(
        self, api: httpx.Client, stack: Stack
    ) -> None:
        first, second = create_workflow(api), create_workflow(api)
        prefix = stack.env["AUTOMATEOS_PUBLIC_URL"] + "/hooks/"
        assert first["webhook_url"].startswith(prefix)
        token = first["webhook_url"][len(prefix) :]
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) >= 32
        assert first["webhook_url"] != second["webhook_url"]

    def test_only_the_hash_of_the_token_is_stored(self, api: httpx.Client, db: Database) -> None:
        workflow = create_workflow(api)
        token = workflow["webhook_url"].rsplit("/", 1)[1]
        [row] = db.fetch("SELECT * FROM workflows WHERE id = $1", uuid.UUID(workflow["id"]))
        assert token not in str(dict(row))

    def test_hmac_signature_defaults_its_header(self, api: httpx.Client) -> None:
        workflow = create_workflow(api, trigger=_signed("hmac-sha256"))
        assert workflow["trigger"]["signature"] == {
            "scheme": "hmac-sha256",
            "header": "X-Signature-256",
            "secret_set": True,
        }

    @pytest.mark.parametrize(
        "secret",
        [
            "whsec_" + base64.b64encode(b"k3y-0f-24-r4nd0m-bytes!?").decode(),
            "a-raw-key-of-some-length",
        ],
    )
    def test_accepts_standard_webhooks_secrets(self, api: httpx.Client, secret: str) -> None:
        trigger = {"signature": {"scheme": "standard-webhooks", "secret": secret}}
        workflow = create_workflow(api, trigger=trigger)
        assert workflow["trigger"]["signature"]["scheme"] == "standard-webhooks"


class TestRead:
    def test_get_returns_what_was_created(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        response = api.get(f"/workflows/{workflow['id']}")
        assert response.status_code == 200
        assert response.json() == workflow

    def test_webhook_url_is_stable_across_reads(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        urls = {api.get(f"/workflows/{workflow['id']}").json()["webhook_url"] for _ in range(3)}
        listed = [w["webhook_url"] for w in api.get("/workflows").json()["items"]]
        assert urls == {workflow["webhook_url"]}
        assert workflow["webhook_url"] in listed

    @pytest.mark.parametrize("workflow_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
    def test_unknown_or_malformed_id_is_404(self, api: httpx.Client, workflow_id: str) -> None:
        response = api.get(f"/workflows/{workflow_id}")
        assert response.status_code == 404
        assert response.json() == {"detail": "workflow not found"}


class TestList:
    def test_walks_every_workflow_once_newest_first(self, api: httpx.Client) -> None:
        created = [create_workflow(api, name=f"wf {i}")["id"] for i in range(7)]
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/workflows", params=params).json()
            seen.extend(item["id"] for item in page["items"])
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(created))
        assert pages == 3

    def test_default_limit_returns_all_of_a_few(self, api: httpx.Client) -> None:
        create_workflow(api)
        page = api.get("/workflows").json()
        assert len(page["items"]) == 1
        assert page["next_cursor"] is None

    @pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"cursor": "garbage!"}])
    def test_rejects_bad_paging(self, api: httpx.Client, params: dict[str, Any]) -> None:
        response = api.get("/workflows", params=params)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][:2] == ["query", next(iter(params))]

    def test_never_lists_another_users_workflows(
        self, api: httpx.Client, other_api: httpx.Client
    ) -> None:
        mine = create_workflow(api)
        theirs = create_workflow(other_api)
        listed = {item["id"] for item in api.get("/workflows").json()["items"]}
        assert mine["id"] in listed
        assert theirs["id"] not in listed


class TestReplace:
    def test_put_replaces_and_resets_omitted_fields(self, api: httpx.Client) -> None:
        workflow = create_workflow(api, description="old", active=False, trigger=_signed("github"))
        response = api.put(
            f"/workflows/{workflow['id']}", json={"name": "new", "nodes": [FILTER_NODE]}
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["name"], body["description"], body["active"]) == ("new", "", True)
        assert body["nodes"] == [FILTER_NODE]
        assert body["trigger"] == {"type": "webhook", "signature": None}
        assert body["version"] == 2

    def test_put_requires_nodes(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        response = api.put(f"/workflows/{workflow['id']}", json={"name": "new"})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "nodes"]


class TestPatch:
    def test_changes_only_the_given_fields(self, api: httpx.Client) -> None:
        workflow = create_workflow(api, description="keep me")
        response = api.patch(f"/workflows/{workflow['id']}", json={"active": False})
        assert response.status_code == 200
        body = response.json()
        assert body["active"] is False
        assert (body["name"], body["description"], body["nodes"]) == (
            workflow["name"],
            "keep me",
            workflow["nodes"],
        )

    def test_rejects_null_for_a_required_field(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        response = api.patch(f"/workflows/{workflow['id']}", json={"name": None})
        assert response.status_code == 422

    def test_signature_without_secret_keeps_the_stored_secret(self, api: httpx.Client) -> None:
        workflow = create_workflow(api, trigger=_signed("hmac-sha256"))
        response = api.patch(
            f"/workflows/{workflow['id']}",
            json={"trigger": {"signature": {"scheme": "hmac-sha256", "header": "X-Sig"}}},
        )
        assert response.status_code == 200
        assert response.json()["trigger"]["signature"] == {
            "scheme": "hmac-sha256",
            "header": "X-Sig",
            "secret_set": True,
        }

    def test_new_scheme_without_secret_is_422(self, api: httpx.Client) -> None:
        workflow = create_workflow(api, trigger=_signed("github"))
        response = api.patch(
            f"/workflows/{workflow['id']}",
            json={"trigger": {"signature": {"scheme": "hmac-sha256"}}},
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "trigger", "signature", "secret"]
        assert api.get(f"/workflows/{workflow['id']}").json()["version"] == 1

    def test_null_trigger_removes_the_signature(self, api: httpx.Client) -> None:
        workflow = create_workflow(api, trigger=_signed("github"))
        response = api.patch(f"/workflows/{workflow['id']}", json={"trigger": None})
        assert response.json()["trigger"] == {"type": "webhook", "signature": None}


class TestDelete:
    def test_deletes_and_then_404s(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        response = api.delete(f"/workflows/{workflow['id']}")
        assert response.status_code == 204
        assert response.content == b""
        assert api.get(f"/workflows/{workflow['id']}").status_code == 404
        assert api.delete(f"/workflows/{workflow['id']}").status_code == 404


class TestVersions:
    def test_each_change_bumps_version_and_keeps_every_version(
        self, api: httpx.Client, db: Database
    ) -> None:
        workflow = create_workflow(api, nodes=[LOG_NODE])
        path = f"/workflows/{workflow['id']}"
        assert api.patch(path, json={"nodes": [FILTER_NODE]}).json()["version"] == 2
        assert api.put(path, json={"name": "x", "nodes": [HTTP_NODE]}).json()["version"] == 3
        assert api.patch(path, json={"active": False}).json()["version"] == 4
        rows = db.fetch(
            "SELECT version, nodes FROM workflow_versions WHERE workflow_id = $1 ORDER BY version",
            uuid.UUID(workflow["id"]),
        )
        import json

        assert [(row["version"], json.loads(row["nodes"])) for row in rows] == [
            (1, [LOG_NODE]),
            (2, [FILTER_NODE]),
            (3, [HTTP_NODE]),
            (4, [HTTP_NODE]),
        ]

    def test_a_request_that_changes_nothing_is_no_new_version(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        path = f"/workflows/{workflow['id']}"
        assert api.patch(path, json={}).json()["version"] == 1
        same = {"name": workflow["name"], "nodes": workflow["nodes"]}
        assert api.put(path, json=same).json()["version"] == 1

    def test_rotation_is_no_new_version(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        rotated = api.post(f"/workflows/{workflow['id']}/webhook/rotate").json()
        assert rotated["version"] == 1

    def test_concurrent_changes_get_consecutive_versions(
        self, api: httpx.Client, db: Database
    ) -> None:
        workflow = create_workflow(api)
        path = f"/workflows/{workflow['id']}"
        with ThreadPoolExecutor(8) as pool:
            statuses = list(
                pool.map(lambda i: api.patch(path, json={"name": f"n{i}"}).status_code, range(12))
            )
        assert statuses == [200] * 12
        rows = db.fetch(
            "SELECT version FROM workflow_versions WHERE workflow_id = $1 ORDER BY version",
            uuid.UUID(workflow["id"]),
        )
        assert [row["version"] for row in rows] == list(range(1, 14))
        assert api.get(path).json()["version"] == 13


def _loc(response: httpx.Response) -> list[list[Any]]:
    return [error["loc"] for error in response.json()["detail"]]


class TestValidation:
    @pytest.mark.parametrize(
        ("node", "loc"),
        [
            ({"id": "x", "type": "nope", "params": {}}, ["body", "nodes", "x", "type"]),
            ({"id": "x", "type": "log", "params": {}}, ["body", "nodes", "x", "params", "message"]),
            (
                {"id": "x", "type": "delay", "params": {"seconds": "soon"}},
                ["body", "nodes", "x", "params", "seconds"],
            ),
            (
                {"id": "x", "type": "log", "params": {"message": "{{ trigger.body. }}"}},
                ["body", "nodes", "x", "params", "message"],
            ),
            (
                {"id": "bad-id", "type": "log", "params": {"message": "m"}},
                ["body", "nodes", 0, "id"],
            ),
        ],
        ids=["unknown-type", "missing-param", "wrong-type", "template-syntax", "bad-id"],
    )
    def test_bad_node_is_422_naming_node_and_field(
        self, api: httpx.Client, node: dict[str, Any], loc: list[Any]
    ) -> None:
        response = api.post("/workflows", json={"name": "bad", "nodes": [node]})
        assert response.status_code == 422
        assert loc in _loc(response)

    def test_duplicate_node_ids_are_422(self, api: httpx.Client) -> None:
        response = api.post("/workflows", json={"name": "dup", "nodes": [LOG_NODE, LOG_NODE]})
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "nodes", "note", "id"]
        assert "duplicate" in error["msg"]

    def test_bad_nodes_on_patch_are_422_and_change_nothing(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        bad = {"id": "x", "type": "nope", "params": {}}
        response = api.patch(f"/workflows/{workflow['id']}", json={"nodes": [bad]})
        assert response.status_code == 422
        assert api.get(f"/workflows/{workflow['id']}").json() == workflow

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"name": "", "nodes": []}, ["body", "name"]),
            ({"name": "n" * 201, "nodes": []}, ["body", "name"]),
            ({"name": "n", "description": "d" * 2001, "nodes": []}, ["body", "description"]),
            ({"name": "n", "nodes": [], "colour": "red"}, ["body", "colour"]),
            ({"name": "n", "nodes": [], "version": 7}, ["body", "version"]),
            ({"name": "n", "nodes": {"id": "x"}}, ["body", "nodes"]),
            (
                {"name": "n", "nodes": [], "trigger": {"type": "cron"}},
                ["body", "trigger", "type"],
            ),
            (
                {
                    "name": "n",
                    "nodes": [],
                    "trigger": {"signature": {"scheme": "md5", "secret": SECRET}},
                },
                ["body", "trigger", "signature", "scheme"],
            ),
            (
                {
                    "name": "n",
                    "nodes": [],
                    "trigger": {"signature": {"scheme": "github", "secret": "short"}},
                },
                ["body", "trigger", "signature", "secret"],
            ),
            (
                {"name": "n", "nodes": [], "trigger": {"signature": {"scheme": "github"}}},
                ["body", "trigger", "signature", "secret"],
            ),
            (
                {"name": "n", "nodes": [], "trigger": _signed("github", header="X-Sig")},
                ["body", "trigger", "signature"],
            ),
            (
                {"name": "n", "nodes": [], "trigger": _signed("hmac-sha256", header="bad header")},
                ["body", "trigger", "signature"],
            ),
            (
                {
                    "name": "n",
                    "nodes": [],
                    "trigger": {
                        "signature": {
                            "scheme": "standard-webhooks",
                            "secret": "whsec_!!not base64!!",
                        }
                    },
                },
                ["body", "trigger", "signature"],
            ),
            (
                {
                    "name": "n",
                    "nodes": [],
                    "trigger": {
                        "signature": {"scheme": "standard-webhooks", "secret": "whsec_" + "a" * 17}
                    },
                },
                ["body", "trigger", "signature"],
            ),
        ],
        ids=[
            "empty-name",
            "long-name",
            "long-description",
            "unknown-field",
            "read-only-field",
            "nodes-not-list",
            "trigger-type",
            "signature-scheme",
            "short-secret",
            "missing-secret",
            "header-not-hmac",
            "bad-header-name",
            "bad-whsec",
            "unpadded-whsec",
        ],
    )
    def test_bad_body_is_422_naming_the_field(
        self, api: httpx.Client, body: dict[str, Any], loc: list[Any]
    ) -> None:
        response = api.post("/workflows", json=body)
        assert response.status_code == 422
        assert loc in _loc(response)


class TestSecrets:
    def test_secret_is_in_no_response(self, api: httpx.Client) -> None:
        created = api.post(
            "/workflows", json={"name": "s", "nodes": [], "trigger": _signed("hmac-sha256")}
        )
        path = f"/workflows/{created.json()['id']}"
        responses = [
            created,
            api.get(path),
            api.get("/workflows"),
            api.patch(path, json={"name": "renamed"}),
            api.put(path, json={"name": "s", "nodes": [], "trigger": _signed("hmac-sha256")}),
            api.post(f"{path}/webhook/rotate"),
        ]
        assert [r.status_code for r in responses] == [201, 200, 200, 200, 200, 200]
        for response in responses:
            assert SECRET not in response.text

    def test_rejected_secret_is_not_echoed(self, api: httpx.Client) -> None:
        short = "tooshort-s3cr3t"
        response = api.post(
            "/workflows",
            json={
                "name": "s",
                "nodes": [],
                "trigger": {"signature": {"scheme": "github", "secret": short}},
            },
        )
        assert response.status_code == 422
        assert short not in response.text

    def test_secret_is_not_logged(self, api: httpx.Client, stack: Stack) -> None:
        create_workflow(api, trigger=_signed("github"))
        assert SECRET not in stack.services["workflows"].log_path.read_text(errors="replace")


class TestRotate:
    def test_rotation_changes_the_url_for_good(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        rotated = api.post(f"/workflows/{workflow['id']}/webhook/rotate")
        assert rotated.status_code == 200
        new_url = rotated.json()["webhook_url"]
        assert new_url != workflow["webhook_url"]
        assert api.get(f"/workflows/{workflow['id']}").json()["webhook_url"] == new_url


class TestAuthentication:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/workflows"),
            ("POST", "/workflows"),
            ("GET", f"/workflows/{uuid.uuid4()}"),
            ("GET", "/workflows/not-a-uuid"),
            ("PATCH", f"/workflows/{uuid.uuid4()}"),
            ("DELETE", f"/workflows/{uuid.uuid4()}"),
            ("POST", f"/workflows/{uuid.uuid4()}/webhook/rotate"),
            ("POST", f"/workflows/{uuid.uuid4()}/run"),
            ("GET", f"/workflows/{uuid.uuid4()}/runs"),
            ("GET", f"/runs/{uuid.uuid4()}"),
            ("POST", f"/runs/{uuid.uuid4()}/retry"),
            ("GET", "/nodes"),
        ],
    )
    def test_requires_a_bearer_token(self, stack: Stack, method: str, path: str) -> None:
        response = httpx.request(method, stack.url("workflows") + path, json={}, timeout=10)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")

    def test_rejects_a_refresh_token(self, stack: Stack, user: Any) -> None:
        bearer = {"Authorization": f"Bearer {user.tokens['refresh_token']}"}
        response = httpx.get(stack.url("workflows") + "/workflows", headers=bearer, timeout=10)
        assert response.status_code == 401


class TestTenancy:
    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("GET", "", None),
            ("PUT", "", {"name": "mine now", "nodes": []}),
            ("PATCH", "", {"name": "mine now"}),
            ("DELETE", "", None),
            ("POST", "/webhook/rotate", None),
        ],
    )
    def test_another_users_workflow_is_404_and_untouched(
        self,
        api: httpx.Client,
        other_api: httpx.Client,
        method: str,
        suffix: str,
        body: dict[str, Any] | None,
    ) -> None:
        workflow = create_workflow(api)
        response = other_api.request(method, f"/workflows/{workflow['id']}{suffix}", json=body)
        assert response.status_code == 404
        assert response.json() == {"detail": "workflow not found"}
        assert api.get(f"/workflows/{workflow['id']}").json() == workflow


class TestCatalogue:
    def test_lists_core_node_types_with_schemas(self, api: httpx.Client) -> None:
        response = api.get("/nodes")
        assert response.status_code == 200
        by_type = {item["type"]: item for item in response.json()["items"]}
        assert {"http_request", "filter", "transform", "delay", "log"} <= set(by_type)
        assert "message" in by_type["log"]["params_schema"]["properties"]
        assert by_type["log"]["version"] >= 1


class TestOperability:
    @pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
    def test_serves_operational_endpoints(self, stack: Stack, path: str) -> None:
        assert httpx.get(stack.url("workflows") + path, timeout=10).status_code == 200

    def test_openapi_hides_internal_routes(self, stack: Stack) -> None:
        paths = httpx.get(stack.url("workflows") + "/openapi.json", timeout=10).json()["paths"]
        assert "/workflows/{workflow_id}" in paths
        assert "/runs/{run_id}" in paths
        assert not any(path.startswith("/internal") for path in paths)
