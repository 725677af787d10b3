"""The credentials API: data write-only and sealed, per user, and checked at workflow save."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from shared.crypto import Keyring, credential_context
from tests.fixtures.database import Database

TOKEN = "tok-" + secrets.token_hex(16)


def http_node(**params: Any) -> dict[str, Any]:
    return {
        "id": "call",
        "type": "http_request",
        "params": {"method": "POST", "url": "https://example.org/x", **params},
    }


def make(api: httpx.Client, name: str, type_: str, data: dict[str, str]) -> httpx.Response:
    return api.post("/credentials", json={"name": name, "type": type_, "data": data})


class TestCreate:
    def test_answers_without_the_data(self, api: httpx.Client) -> None:
        response = make(api, "github", "bearer", {"token": TOKEN})
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["name"], body["type"], body["fields_set"]) == ("github", "bearer", ["token"])
        assert response.headers["location"] == "/credentials/github"
        assert TOKEN not in response.text

    def test_stores_the_data_sealed(
        self, api: httpx.Client, db: Database, keyring: Keyring
    ) -> None:
        make(api, "sealed_one", "basic", {"username": "ada", "password": TOKEN})
        row = db.fetch(
            "SELECT id, data FROM credentials WHERE name = 'sealed_one' ORDER BY created_at DESC"
        )[0]
        assert TOKEN not in row["data"]
        opened = keyring.open(row["data"], credential_context(str(row["id"])))
        assert TOKEN.encode() in opened

    def test_a_taken_name_is_409(self, api: httpx.Client) -> None:
        assert make(api, "twice", "secret", {"value": "a-value"}).status_code == 201
        assert make(api, "twice", "secret", {"value": "b-value"}).status_code == 409

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"name": "x", "type": "bearer", "data": {}}, "data"),
            ({"name": "x", "type": "bearer", "data": {"token": TOKEN, "extra": "1"}}, "data"),
            ({"name": "x", "type": "oauth", "data": {"token": TOKEN}}, "type"),
            ({"name": "has-dash", "type": "secret", "data": {"value": TOKEN}}, "name"),
            ({"name": "x", "type": "header", "data": {"name": "bad name", "value": TOKEN}}, ""),
            ({"name": "x", "type": "secret", "data": {"value": TOKEN + "\n"}}, ""),
        ],
    )
    def test_bad_bodies_are_422_without_echoing_the_data(
        self, api: httpx.Client, body: dict[str, Any], field: str
    ) -> None:
        response = api.post("/credentials", json=body)
        assert response.status_code == 422
        assert TOKEN not in response.text
        assert field in response.text


class TestReadAndChange:
    def test_list_and_get_show_no_data(self, api: httpx.Client) -> None:
        make(api, "listed", "header", {"name": "X-Api-Key", "value": TOKEN})
        listed = api.get("/credentials")
        one = api.get("/credentials/listed")
        assert "listed" in [item["name"] for item in listed.json()["items"]]
        assert one.json()["fields_set"] == ["name", "value"]
        assert TOKEN not in listed.text + one.text

    def test_another_users_credential_is_404(
        self, api: httpx.Client, other_api: httpx.Client
    ) -> None:
        make(api, "mine", "secret", {"value": TOKEN})
        assert other_api.get("/credentials/mine").status_code == 404
        assert (
            other_api.put(
                "/credentials/mine", json={"type": "secret", "data": {"value": "x" * 8}}
            ).status_code
            == 404
        )
        assert other_api.delete("/credentials/mine").status_code == 404
        assert "mine" not in [c["name"] for c in other_api.get("/credentials").json()["items"]]

    def test_put_replaces_the_data(self, api: httpx.Client, db: Database, keyring: Keyring) -> None:
        make(api, "rotated", "bearer", {"token": "old-token-value"})
        response = api.put(
            "/credentials/rotated", json={"type": "bearer", "data": {"token": TOKEN}}
        )
        assert response.status_code == 200, response.text
        row = db.fetch(
            "SELECT id, data FROM credentials WHERE name = 'rotated' ORDER BY updated_at DESC"
        )[0]
        assert TOKEN.encode() in keyring.open(row["data"], credential_context(str(row["id"])))

    def test_delete_then_404(self, api: httpx.Client) -> None:
        make(api, "gone", "secret", {"value": TOKEN})
        assert api.delete("/credentials/gone").status_code == 204
        assert api.get("/credentials/gone").status_code == 404


class TestWorkflowReferences:
    def test_naming_a_missing_credential_is_422_at_save(self, api: httpx.Client) -> None:
        response = api.post(
            "/workflows", json={"name": "w", "nodes": [http_node(credential="nope")]}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == [
            "body",
            "nodes",
            "call",
            "params",
            "credential",
        ]

    def test_another_users_credential_cannot_be_named(
        self, api: httpx.Client, other_api: httpx.Client
    ) -> None:
        make(other_api, "theirs", "bearer", {"token": TOKEN})
        nodes = [http_node(credential="theirs")]
        assert api.post("/workflows", json={"name": "w", "nodes": nodes}).status_code == 422

    def test_a_missing_secret_in_a_template_is_422(self, api: httpx.Client) -> None:
        nodes = [http_node(json={"k": "{{ secrets.absent }}"})]
        response = api.post("/workflows", json={"name": "w", "nodes": nodes})
        assert response.status_code == 422
        assert "absent" in response.text

    def test_the_wrong_type_is_422(self, api: httpx.Client) -> None:
        make(api, "plain", "secret", {"value": TOKEN})
        nodes = [http_node(credential="plain")]
        assert api.post("/workflows", json={"name": "w", "nodes": nodes}).status_code == 422

    def test_a_used_credential_cannot_be_deleted(self, api: httpx.Client) -> None:
        make(api, "used", "bearer", {"token": TOKEN})
        make(api, "used_secret", "secret", {"value": TOKEN})
        nodes = [http_node(credential="used", json={"s": "{{ secrets.used_secret }}"})]
        created = api.post("/workflows", json={"name": "user", "nodes": nodes})
        assert created.status_code == 201, created.text
        assert api.delete("/credentials/used").status_code == 409
        assert api.delete("/credentials/used_secret").status_code == 409


class TestAllowedHosts:
    def test_are_stored_lower_case_shown_and_replaced_with_the_rest(
        self, api: httpx.Client
    ) -> None:
        body = {
            "name": "fenced",
            "type": "bearer",
            "data": {"token": TOKEN},
            "allowed_hosts": ["API.GitHub.com", "*.example.org"],
        }
        created = api.post("/credentials", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["allowed_hosts"] == ["api.github.com", "*.example.org"]
        assert api.get("/credentials/fenced").json()["allowed_hosts"] == [
            "api.github.com",
            "*.example.org",
        ]
        replaced = api.put("/credentials/fenced", json={"type": "bearer", "data": {"token": "t"}})
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["allowed_hosts"] is None

    @pytest.mark.parametrize(
        "hosts",
        [[], ["https://api.github.com"], ["api.github.com/x"], ["*"], ["a b"], ["x"] * 51],
    )
    def test_what_is_not_a_host_list_is_422(self, api: httpx.Client, hosts: list[str]) -> None:
        body = {"name": "bad", "type": "bearer", "data": {"token": TOKEN}, "allowed_hosts": hosts}
        answer = api.post("/credentials", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"][:2] == ["body", "allowed_hosts"]
