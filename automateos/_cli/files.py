"""Workflows as files: reading what `apply` takes, writing what `export` gives, and the one
canonical form both use (so an exported file applies back unchanged)."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from automateos import Workflow

SUFFIXES = (".yaml", ".yml", ".json")
# What the API computes or assigns: never part of a definition.
_OUTPUT_ONLY = frozenset(
    {"id", "version", "webhook_url", "next_run_at", "created_at", "updated_at"}
)
_LEADING = ("name", "description", "active", "trigger", "retention")


class FileProblem(Exception):
    """A workflow file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class WorkflowFile:
    path: Path
    definition: dict[str, Any]

    @property
    def name(self) -> str:
        name: str = self.definition["name"]
        return name


def _workflow_paths(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(
            child for child in path.iterdir() if child.suffix in SUFFIXES and child.is_file()
        )
        if not found:
            raise FileProblem(f"{path}: no {'/'.join(SUFFIXES)} files in this folder")
        return found
    if not path.exists():
        raise FileProblem(f"{path}: no such file or folder")
    return [path]


def _plain_times(value: Any) -> Any:
    """YAML reads an unquoted 2026-01-01 as a date; the API takes JSON, so back to text."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain_times(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_times(item) for item in value]
    return value


def _parse(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileProblem(f"{path}: cannot read: {exc}") from None
    try:
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise FileProblem(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    if not isinstance(loaded, dict):
        raise FileProblem(f"{path}: a workflow file holds one mapping (name, nodes, ...)")
    name = loaded.get("name")
    if not isinstance(name, str) or not name.strip():
        raise FileProblem(f"{path}: field name: required (it identifies the workflow)")
    definition: dict[str, Any] = _plain_times(loaded)
    definition["name"] = name.strip()
    return definition


def load(path: Path) -> list[WorkflowFile]:
    """Every workflow file at `path` (a file, or a folder's .yaml/.yml/.json files), parsed.

    Raises FileProblem listing every unreadable file, and any name two files share.
    """
    problems: list[str] = []
    files: list[WorkflowFile] = []
    seen: dict[str, Path] = {}
    for candidate in _workflow_paths(path):
        try:
            definition = _parse(candidate)
        except FileProblem as exc:
            problems.append(str(exc))
            continue
        name = definition["name"]
        if name in seen:
            problems.append(f"{candidate}: name {name!r} is already used by {seen[name]}")
            continue
        seen[name] = candidate
        files.append(WorkflowFile(candidate, definition))
    if problems:
        raise FileProblem("\n".join(problems))
    return files


def _trigger(trigger: dict[str, Any]) -> dict[str, Any] | None:
    out = {key: value for key, value in trigger.items() if value is not None}
    signature = out.get("signature")
    if isinstance(signature, dict):
        # The secret is write-only: a PUT without it keeps the stored one (same scheme).
        out["signature"] = {
            key: value
            for key, value in signature.items()
            if key != "secret_set" and value is not None
        }
    if out == {"type": "webhook"}:
        return None  # the default trigger
    return out


def definition_of(workflow: Workflow, inputs: frozenset[str] | None = None) -> dict[str, Any]:
    """The workflow as a file would define it: what PUT takes, defaults left out, nodes last.

    Fields this client does not know (added by a newer server) are kept when `inputs` (the
    fields the API's definition takes) names them, so they survive an export and apply while
    a new read-only field never makes a file PUT refuses. Without `inputs`, every field not
    known to be read-only is kept.
    """
    data = workflow.model_dump(mode="json")
    out: dict[str, Any] = {"name": data["name"]}
    if data.get("description"):
        out["description"] = data["description"]
    if not data.get("active", True):
        out["active"] = False
    trigger = _trigger(data.get("trigger") or {})
    if trigger is not None:
        out["trigger"] = trigger
    retention = {k: v for k, v in (data.get("retention") or {}).items() if v is not None}
    if retention and retention != {"keep_details": "all"}:
        out["retention"] = retention
    for key, value in data.items():
        if key in _OUTPUT_ONLY or key in _LEADING or key == "nodes" or value is None:
            continue
        if inputs is not None and key not in inputs:
            continue
        out[key] = value
    out["nodes"] = data["nodes"]
    return out


def to_yaml(definition: dict[str, Any]) -> str:
    text: str = yaml.safe_dump(definition, sort_keys=False, allow_unicode=True, width=100)
    return text


def slug(name: str) -> str:
    """A file name for a workflow name: lower case, dashes, nothing a shell minds."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return cleaned[:80] or "workflow"


def export(
    workflows: list[Workflow], folder: Path, inputs: frozenset[str] | None = None
) -> list[tuple[Workflow, Path]]:
    """Write each workflow to `<folder>/<slug>.yaml` (a numbered name when two slugs meet)."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Workflow, Path]] = []
    taken: set[str] = set()
    for workflow in sorted(workflows, key=lambda item: (item.name, item.created_at)):
        base = slug(workflow.name)
        stem, number = base, 2
        while stem in taken:
            stem, number = f"{base}-{number}", number + 1
        taken.add(stem)
        path = folder / f"{stem}.yaml"
        path.write_text(to_yaml(definition_of(workflow, inputs)), encoding="utf-8")
        written.append((workflow, path))
    return written
