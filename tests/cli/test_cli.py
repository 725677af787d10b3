"""The installed `automateos` command against the real stack: apply (idempotent, dry run,
prune, validation before any change), export/apply round trip, runs and their exit codes,
credentials from the environment, login and logout."""

from __future__ import annotations

import json
import secrets
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from scripts.localinfra import free_port
from tests.cli.conftest import LOG, Cli, cli_env
from tests.conftest import ApiUser
from tests.fixtures.stack import Stack
from tests.shared.nodes.local_http import LocalServer


def _write(folder: Path, name: str, definition: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return path


def _workflows(user: ApiUser) -> dict[str, dict[str, Any]]:
    with user.client("workflows") as api:
        items: list[dict[str, Any]] = api.get("/workflows").json()["items"]
    return {item["name"]: item for item in items}


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def _greeter(message: str = "hello") -> dict[str, Any]:
    return {
        "name": "greeter",
        "nodes": [{"id": "say", "type": "log", "params": {"message": message}}],
    }


class TestApply:
    def test_creates_then_a_second_apply_changes_nothing(
        self, cli: Cli, user: ApiUser, tmp_path: Path
    ) -> None:
        folder = tmp_path / "flows"
        _write(folder, "greeter.yaml", _greeter())
        (folder / "shaper.json").write_text(
            json.dumps({"name": "shaper", "description": "reshapes", "nodes": [LOG]})
        )
        (folder / "README.md").write_text("not a workflow")
        assert _lines(cli.ok("apply", "-f", str(folder))) == ["greeter created", "shaper created"]
        assert _lines(cli.ok("apply", "-f", str(folder))) == [
            "greeter unchanged",
            "shaper unchanged",
        ]
        assert {name: wf["version"] for name, wf in _workflows(user).items()} == {
            "greeter": 1,
            "shaper": 1,
        }
        _write(folder, "greeter.yaml", _greeter("changed"))
        assert _lines(cli.ok("apply", "-f", str(folder / "greeter.yaml"))) == ["greeter updated v2"]
        records = json.loads(cli.ok("apply", "-f", str(folder), "--output", "json"))
        assert [(r["name"], r["action"], r["version"]) for r in records] == [
            ("greeter", "unchanged", 2),
            ("shaper", "unchanged", 1),
        ]

    def test_dry_run_shows_the_diff_and_changes_nothing(
        self, cli: Cli, user: ApiUser, tmp_path: Path
    ) -> None:
        folder = tmp_path / "flows"
        _write(folder, "greeter.yaml", _greeter())
        cli.ok("apply", "-f", str(folder))
        _write(folder, "greeter.yaml", _greeter("changed"))
        _write(folder, "new.yaml", {"name": "new", "nodes": [LOG]})
        out = cli.ok("apply", "-f", str(folder), "--dry-run")
        assert "-    message: hello\n+    message: changed" in out
        assert "greeter would be updated v2" in out
        assert "new would be created" in out
        stored = _workflows(user)
        assert set(stored) == {"greeter"}
        assert stored["greeter"]["version"] == 1
        assert stored["greeter"]["nodes"][0]["params"]["message"] == "hello"

    def test_an_invalid_file_fails_naming_file_node_and_field_before_any_change(
        self, cli: Cli, user: ApiUser, tmp_path: Path
    ) -> None:
        folder = tmp_path / "flows"
        _write(folder, "a-good.yaml", {"name": "good", "nodes": [LOG]})
        bad = _write(
            folder,
            "b-bad.yaml",
            {"name": "bad", "nodes": [{"id": "call", "type": "http_request", "params": {}}]},
        )
        done = cli("apply", "-f", str(folder))
        assert done.returncode == 1
        assert "nothing was changed" in done.stderr
        assert f"{bad}: node call, field params.url:" in done.stderr
        assert _workflows(user) == {}

    def test_unreadable_files_and_shared_names_are_refused(self, cli: Cli, tmp_path: Path) -> None:
        folder = tmp_path / "flows"
        _write(folder, "one.yaml", {"name": "same", "nodes": []})
        _write(folder, "two.yaml", {"name": "same", "nodes": []})
        (folder / "three.yml").write_text("name: [unclosed")
        done = cli("apply", "-f", str(folder))
        assert done.returncode == 1
        assert "two.yaml: name 'same' is already used by" in done.stderr
        assert "three.yml: not valid YML" in done.stderr

    def test_prune_deactivates_workflows_no_file_names(
        self, cli: Cli, user: ApiUser, tmp_path: Path
    ) -> None:
        folder = tmp_path / "flows"
        _write(folder, "keep.yaml", {"name": "keep", "nodes": [LOG]})
        gone = _write(folder, "gone.yaml", {"name": "gone", "nodes": [LOG]})
        cli.ok("apply", "-f", str(folder))
        gone.unlink()
        assert _lines(cli.ok("apply", "-f", str(folder))) == ["keep unchanged"]
        assert "gone would be deactivated" in cli.ok(
            "apply", "-f", str(folder), "--prune", "--dry-run"
        )
        assert _workflows(user)["gone"]["active"] is True
        assert _lines(cli.ok("apply", "-f", str(folder), "--prune")) == [
            "keep unchanged",
            "gone deactivated",
        ]
        assert _workflows(user)["gone"]["active"] is False
        assert _lines(cli.ok("apply", "-f", str(folder), "--prune")) == ["keep unchanged"]


class TestExport:
    def test_export_then_apply_is_a_no_op(self, cli: Cli, user: ApiUser, tmp_path: Path) -> None:
        with user.client("workflows") as api:
            for body in (
                {
                    "name": "Signed hook",
                    "description": "with a secret",
                    "nodes": [LOG],
                    "trigger": {
                        "signature": {"scheme": "hmac-sha256", "secret": "k3y-" + "q8Zr" * 6}
                    },
                    "retention": {"days": 7, "keep_details": "failed"},
                },
                {
                    "name": "nightly",
                    "active": False,
                    "nodes": [
                        LOG,
                        {"id": "t", "type": "transform", "params": {"values": {"d": "2026-01-01"}}},
                    ],
                    "trigger": {
                        "type": "schedule",
                        "cron": "0 3 * * *",
                        "timezone": "Europe/Paris",
                    },
                },
            ):
                assert api.post("/workflows", json=body).status_code == 201
        folder = tmp_path / "exported"
        out = cli.ok("export", "--dir", str(folder))
        assert sorted(path.name for path in folder.iterdir()) == [
            "nightly.yaml",
            "signed-hook.yaml",
        ]
        assert "Signed hook ->" in out
        assert "q8Zr" not in (folder / "signed-hook.yaml").read_text()
        assert _lines(cli.ok("apply", "-f", str(folder))) == [
            "nightly unchanged",
            "Signed hook unchanged",
        ]
        assert {wf["version"] for wf in _workflows(user).values()} == {1}


class TestRuns:
    def test_run_wait_exit_codes_logs_and_get_runs(
        self, cli: Cli, tmp_path: Path, echo: LocalServer
    ) -> None:
        folder = tmp_path / "flows"
        _write(folder, "ok.yaml", {"name": "ok", "nodes": [LOG]})
        call = {"id": "call", "type": "http_request", "params": {"url": echo.url("/status/404")}}
        _write(folder, "broken.yaml", {"name": "broken", "nodes": [call]})
        cli.ok("apply", "-f", str(folder))

        body = tmp_path / "body.json"
        body.write_text('{"order": 7}')
        run = json.loads(cli.ok("run", "ok", "--data", f"@{body}", "--wait", "-o", "json"))
        assert (run["status"], run["trigger"]["body"]) == ("succeeded", {"order": 7})

        failed = cli("run", "broken", "--data", '{"x": 1}', "--wait")
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "failed" in failed.stdout
        assert "404" in failed.stdout

        failed_runs = json.loads(
            cli.ok("get", "runs", "--status", "failed", "--since", "1h", "-o", "json")
        )
        assert [item["status"] for item in failed_runs] == ["failed"]
        run_id = failed_runs[0]["id"]
        logs = cli.ok("logs", run_id)
        assert "call" in logs
        assert "http_request" in logs
        only_ok = json.loads(cli.ok("get", "runs", "--workflow", "ok", "-o", "json"))
        assert [item["id"] for item in only_ok] == [run["id"]]

        retried = cli.ok("retry", run_id)
        assert f"a retry of {run_id}" in retried
        cancelled = cli("cancel", run_id)
        assert cancelled.returncode == 1
        assert "already ended" in cancelled.stderr

        queued = cli.ok("run", "ok", "-o", "json")
        assert "run_id" in json.loads(queued)

    def test_bad_input_is_a_usage_error(self, cli: Cli) -> None:
        assert cli("run", "nothing-by-this-name").returncode == 2
        assert cli("get", "runs", "--since", "yesterday").returncode == 2
        assert cli("logs", "not-a-run-id").returncode == 2
        bad_json = cli("run", "x", "--data", "{nope")
        assert bad_json.returncode == 2
        assert "not valid JSON" in bad_json.stderr

    def test_tail_follows_new_runs(self, cli: Cli, user: ApiUser, tmp_path: Path) -> None:
        _write(tmp_path, "tailed.yaml", {"name": "tailed", "nodes": [LOG]})
        cli.ok("apply", "-f", str(tmp_path / "tailed.yaml"))
        tail = cli.popen("runs", "tail", "tailed", "--for", "4")
        try:
            time.sleep(1.5)
            with user.client("workflows") as api:
                workflow = _workflows(user)["tailed"]
                run_id = api.post(f"/workflows/{workflow['id']}/run", json={}).json()["run_id"]
            out, err = tail.communicate(timeout=30)
        finally:
            if tail.poll() is None:
                tail.kill()
                tail.wait(timeout=10)
        assert tail.returncode == 0, err
        assert run_id in out
        assert "succeeded" in out


class TestCredentials:
    def test_set_from_env_and_list_without_the_value(self, cli: Cli) -> None:
        secret = "tok-" + "z" * 20
        saved = cli(
            "credentials",
            "set",
            "api_token",
            "--type",
            "bearer",
            "--from-env",
            "MY_TOKEN",
            env={"MY_TOKEN": secret},
        )
        assert saved.returncode == 0, saved.stderr
        listed = cli.ok("credentials", "list", "-o", "json")
        assert [(c["name"], c["type"], c["fields_set"]) for c in json.loads(listed)] == [
            ("api_token", "bearer", ["token"])
        ]
        assert secret not in listed + saved.stdout + saved.stderr
        basic = cli(
            "credentials",
            "set",
            "login",
            "--type",
            "basic",
            "--from-env",
            "username=U",
            "--from-env",
            "password=P",
            env={"U": "ada", "P": "pw-" + "y" * 12},
        )
        assert basic.returncode == 0, basic.stderr
        assert (
            cli("credentials", "set", "x", "--type", "bearer", "--from-env", "UNSET_VAR").returncode
            == 2
        )
        piped = cli(
            "credentials", "set", "piped", "--type", "secret", "--from-stdin", stdin="s3cret\n"
        )
        assert piped.returncode == 0, piped.stderr


class TestSession:
    def test_login_keeps_tokens_owner_only_and_logout_forgets_them(
        self, cli: Cli, user: ApiUser
    ) -> None:
        tokens = cli.config_dir / "tokens.json"
        assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
        assert cli.ok("whoami").strip() == user.email
        out = cli.ok("logout")
        assert "logged out" in out
        assert not tokens.exists()
        done = cli("get", "workflows")
        assert done.returncode == 1
        assert "automateos login" in done.stderr

    def test_register_logs_in(self, stack: Stack, tmp_path: Path) -> None:
        runner = Cli(cli_env(stack, tmp_path), tmp_path / "automateos")
        email = f"cli-{secrets.token_hex(4)}@example.com"
        account = {"AUTOMATEOS_EMAIL": email, "AUTOMATEOS_PASSWORD": "correct horse battery"}
        assert runner.ok("register", env=account).strip() == f"logged in as {email}"
        assert runner.ok("whoami").strip() == email

    def test_wrong_password_fails(self, stack: Stack, user: ApiUser, tmp_path: Path) -> None:
        runner = Cli(cli_env(stack, tmp_path), tmp_path / "automateos")
        done = runner(
            "login", env={"AUTOMATEOS_EMAIL": user.email, "AUTOMATEOS_PASSWORD": "wrong-one-x"}
        )
        assert done.returncode == 1
        assert "invalid email or password" in done.stderr
        assert runner("login").returncode == 2  # no terminal to ask on, no environment

    def test_status_checks_every_service(self, stack: Stack, tmp_path: Path) -> None:
        runner = Cli(cli_env(stack, tmp_path), tmp_path / "automateos")
        ready = json.loads(runner.ok("status", "-o", "json"))
        assert {(row["service"], row["ready"]) for row in ready} == {
            ("auth", True),
            ("workflows", True),
            ("ingest", True),
        }
        down = runner("status", "--ingest-url", f"http://127.0.0.1:{free_port()}")
        assert down.returncode == 1
        assert "ingest" in down.stdout

    def test_help_everywhere(self, stack: Stack, tmp_path: Path) -> None:
        runner = Cli(cli_env(stack, tmp_path), tmp_path / "automateos")
        for args in (
            ["--help"],
            ["apply", "--help"],
            ["runs", "tail", "--help"],
            ["credentials", "set", "--help"],
        ):
            done = runner(*args)
            assert done.returncode == 0
            assert "usage: automateos" in done.stdout
        assert httpx.URL(stack.url("workflows")).host == "127.0.0.1"
