"""The pages that change things: register, credentials, and the workflow editor (create with a
rejected save shown at its node, edit as YAML into a new version, the node catalogue,
activate/deactivate, run now with a typed body and with a past run's body)."""

from __future__ import annotations

import json
import re
import secrets

import httpx
from playwright.sync_api import expect

from tests.conftest import ApiUser
from tests.console.conftest import Console
from tests.e2e.conftest import create_workflow, wait_for_run
from tests.fixtures.stack import Stack

SECRET = f"s3cret-{secrets.token_hex(8)}"
ROTATED = f"r0tated-{secrets.token_hex(8)}"


class TestRegister:
    def test_registers_from_the_login_page_and_lands_signed_in(
        self, console: Console, stack: Stack
    ) -> None:
        email = f"reg-{secrets.token_hex(5)}@example.com"
        console.open()
        page = console.page
        page.get_by_role("link", name="Register").click()
        expect(page.get_by_role("heading", name="Register")).to_be_visible()

        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill("password")  # long enough, but a common one
        page.get_by_role("button", name="Register").click()
        expect(page.get_by_role("alert")).to_contain_text("password")
        expect(page.get_by_role("heading", name="Register")).to_be_visible()

        page.get_by_label("Password").fill("a long and fresh passphrase")
        page.get_by_role("button", name="Register").click()
        expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        with httpx.Client(base_url=stack.url("auth"), timeout=10) as auth:
            login = {"email": email, "password": "a long and fresh passphrase"}
            assert auth.post("/auth/login", json=login).status_code == 200
        assert console.unexpected("status of 422") == []


class TestCredentials:
    def test_creates_rotates_and_deletes_without_ever_showing_a_value(
        self, console: Console, user: ApiUser
    ) -> None:
        console.log_in(user)
        page = console.page
        page.get_by_role("link", name="Credentials").click()
        expect(page.get_by_role("heading", name="Credentials")).to_be_visible()

        form = page.get_by_role("form", name="New credential")
        form.get_by_label("Name").fill("crm_token")
        form.get_by_label("Type").select_option("bearer")
        form.get_by_label("token").fill(SECRET)
        expect(form.get_by_label("token")).to_have_attribute("type", "password")
        form.get_by_role("button", name="Create").click()
        row = page.locator("li.credential", has_text="crm_token")
        expect(row).to_contain_text("bearer")
        expect(row).to_contain_text("fields set: token")
        expect(form.get_by_label("token")).to_have_value("")
        assert SECRET not in page.content()

        with user.client("workflows") as api:
            before = api.get("/credentials/crm_token").json()
        row.get_by_role("button", name="Rotate…").click()
        row.get_by_label("Type").select_option("header")
        row.get_by_label("name").fill("X-Api-Key")
        row.get_by_label("value").fill(ROTATED)
        row.get_by_role("button", name="Save new values").click()
        expect(row).to_contain_text("fields set: name, value")
        assert ROTATED not in page.content()
        with user.client("workflows") as api:
            after = api.get("/credentials/crm_token").json()
        assert after["type"] == "header"
        assert after["updated_at"] > before["updated_at"]

        row.get_by_role("button", name="Delete…").click()
        row.get_by_role("button", name="Keep it").click()
        expect(row).to_be_visible()
        row.get_by_role("button", name="Delete…").click()
        row.get_by_role("button", name="Delete now").click()
        expect(page.locator("li.credential")).to_have_count(0)
        with user.client("workflows") as api:
            assert api.get("/credentials/crm_token").status_code == 404
        assert console.problems == []


BROKEN = {
    "name": "from the editor",
    "nodes": [
        {"id": "greet", "type": "log", "params": {"message": "hi {{ trigger.body.n }}"}},
        {"id": "fetch", "type": "http_request", "params": {"method": "GET"}},
    ],
}


class TestEditor:
    def test_a_rejected_save_shows_the_error_at_its_node_then_creates(
        self, console: Console, user: ApiUser
    ) -> None:
        console.log_in(user)
        page = console.page
        page.get_by_role("link", name="New workflow").click()
        expect(page.get_by_role("heading", name="New workflow")).to_be_visible()
        page.get_by_label("JSON").check()
        definition = page.get_by_label("Definition")
        expect(definition).to_have_value(re.compile(r'^\{\n  "name"'))

        definition.fill("{ not json")
        expect(page.get_by_test_id("parse-problem")).to_contain_text("line 1")

        text = json.dumps(BROKEN, indent=2)
        definition.fill(text)
        page.get_by_role("button", name="Create workflow").click()
        fetch = page.locator('.outline-node[data-node="fetch"]')
        expect(fetch).to_have_class(re.compile("has-problem"))
        expect(fetch.locator(".field-problems")).to_contain_text("url")
        line = text.splitlines().index('      "id": "fetch",') + 1
        expect(fetch).to_contain_text(f"line {line}")
        expect(page.locator('.outline-node[data-node="greet"]')).not_to_have_class(
            re.compile("has-problem")
        )

        fixed = {**BROKEN, "nodes": BROKEN["nodes"][:1]}
        definition.fill(json.dumps(fixed, indent=2))
        page.get_by_role("button", name="Create workflow").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("from the editor")
        with user.client("workflows") as api:
            [made] = api.get("/workflows").json()["items"]
        assert made["nodes"] == fixed["nodes"]
        assert console.unexpected("status of 422") == []

    def test_edits_as_yaml_into_a_new_version_with_the_catalogue_and_runs_it(
        self, console: Console, user: ApiUser
    ) -> None:
        log = {"id": "greet", "type": "log", "params": {"message": "hi {{ trigger.body.n }}"}}
        workflow = create_workflow(user, [log], name="edit me")
        console.log_in(user)
        page = console.page
        console.go(f"#/workflows/{workflow['id']}")
        page.get_by_role("link", name="Edit").click()
        definition = page.get_by_label("Definition")
        expect(definition).to_have_value(re.compile(r"^name: edit me\n", re.M))
        assert "webhook_url" not in definition.input_value()  # read-only fields stay out

        # The catalogue: a node's params with their help, and "add" appends a skeleton.
        catalogue = page.get_by_role("complementary", name="Node catalogue")
        catalogue.get_by_label("Find").fill("transform")
        entry = catalogue.locator("details.node-type", has_text="transform").first
        entry.locator("summary").click()
        expect(entry).to_contain_text("values")
        entry.get_by_role("button", name="Add a transform node").click()
        expect(page.locator('.outline-node[data-node="transform_1"]')).to_be_visible()

        text = definition.input_value().replace("hi {{", "hello {{")
        definition.fill(text)
        page.get_by_role("button", name="Save as new version").click()
        expect(page.get_by_role("status")).to_have_text("Saved as version 2.")
        page.get_by_role("button", name="Deactivate").click()
        expect(page.locator("main .pill.off")).to_have_text("inactive")
        with user.client("workflows") as api:
            saved = api.get(f"/workflows/{workflow['id']}").json()
        assert saved["active"] is False
        assert saved["nodes"][0]["params"]["message"] == "hello {{ trigger.body.n }}"
        assert [n["id"] for n in saved["nodes"]] == ["greet", "transform_1"]
        page.get_by_role("button", name="Activate").click()
        expect(page.locator("main .pill.on")).to_have_text("active")

        # Run now with a typed body, then again with that run's body picked from the list.
        run_now = page.get_by_role("form", name="Run now")
        run_now.get_by_label("Body").fill('{"n": 7}')
        run_now.get_by_role("button", name="Run now").click()
        expect(page.get_by_role("heading", name="Run")).to_be_visible()
        first = page.locator("code.run-id").inner_text()
        assert wait_for_run(user, first)["trigger"]["body"] == {"n": 7}

        page.go_back()
        run_now = page.get_by_role("form", name="Run now")
        run_now.get_by_label("Body of a past run").select_option(first)
        expect(run_now.get_by_label("Body (JSON")).to_have_value('{\n  "n": 7\n}\n')
        run_now.get_by_role("button", name="Run now").click()
        expect(page.locator("code.run-id")).not_to_have_text(first)
        second = page.locator("code.run-id").inner_text()
        assert wait_for_run(user, second)["trigger"]["body"] == {"n": 7}
        assert console.problems == []
