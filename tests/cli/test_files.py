"""Workflow files: what `export` writes is what `apply` reads back, fields a newer server adds
are carried only when its API takes them, and folders are read strictly."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from automateos import Workflow
from automateos._cli.files import FileProblem, definition_of, export, load

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def _workflow(name: str, **extra: object) -> Workflow:
    return Workflow.model_validate(
        {
            "id": str(uuid.uuid4()),
            "name": name,
            "description": "",
            "active": True,
            "version": 3,
            "nodes": [{"id": "n", "type": "log", "params": {"message": "2026-01-01"}}],
            "trigger": {"type": "webhook", "signature": None},
            "retention": {"days": None, "max_runs": None, "keep_details": "all"},
            "webhook_url": "http://127.0.0.1:8003/hooks/secret-token",
            "created_at": NOW.isoformat(),
            "updated_at": NOW.isoformat(),
            **extra,
        }
    )


def test_new_fields_are_kept_only_if_the_api_takes_them() -> None:
    workflow = _workflow("w", on_error="alert", last_run_at=NOW.isoformat())
    assert definition_of(workflow, frozenset({"name", "nodes", "on_error"})) == {
        "name": "w",
        "on_error": "alert",
        "nodes": workflow.nodes,
    }
    assert "last_run_at" in definition_of(workflow, None)


def test_export_writes_what_load_reads_back(tmp_path: Path) -> None:
    workflows = [_workflow("Daily report"), _workflow("daily report!"), _workflow("x")]
    written = export(workflows, tmp_path)
    assert sorted(path.name for _, path in written) == [
        "daily-report-2.yaml",
        "daily-report.yaml",
        "x.yaml",
    ]
    loaded = {file.name: file.definition for file in load(tmp_path)}
    assert loaded["x"] == {"name": "x", "nodes": workflows[2].nodes}
    assert "webhook_url" not in (tmp_path / "x.yaml").read_text()


def test_unquoted_yaml_dates_are_sent_as_text(tmp_path: Path) -> None:
    (tmp_path / "d.yml").write_text(
        "name: d\nnodes:\n- {id: n, type: log, params: {message: 2026-01-01}}\n"
    )
    [file] = load(tmp_path)
    assert file.definition["nodes"][0]["params"]["message"] == "2026-01-01"


def test_a_folder_without_workflow_files_or_a_file_without_a_name_is_refused(
    tmp_path: Path,
) -> None:
    with pytest.raises(FileProblem, match=re.escape("no .yaml/.yml/.json files")):
        load(tmp_path)
    (tmp_path / "nameless.yaml").write_text("nodes: []\n")
    with pytest.raises(FileProblem, match=re.escape("nameless.yaml: field name: required")):
        load(tmp_path)
