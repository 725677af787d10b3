"""`automateos apply`: make the user's workflows match a set of files.

Every file is checked by the API first (a dry-run save: the same rules as a real one), and
nothing changes unless all of them pass; then each workflow is created, saved as a new version,
or left alone. The server decides what counts as a change, so `unchanged` means a real save
would not make a new version.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from automateos import APIError, Client, ValidationError, Workflow, _calls
from automateos._cli.files import WorkflowFile, definition_of, load, to_yaml
from automateos._cli.output import Output

Action = Literal["created", "updated", "unchanged", "deactivated"]


class ApplyRefused(Exception):
    """Some files failed validation; nothing was changed. One problem per line."""


@dataclass(frozen=True)
class Step:
    file: WorkflowFile | None
    current: Workflow | None
    after: Workflow  # as the API says it will be (dry run)

    @property
    def action(self) -> Action:
        if self.file is None:
            return "deactivated"
        if self.current is None:
            return "created"
        return "updated" if self.after.version != self.current.version else "unchanged"

    @property
    def name(self) -> str:
        return self.after.name


def _problems(file: WorkflowFile, exc: APIError) -> list[str]:
    if isinstance(exc, ValidationError) and exc.issues:
        return [f"{file.path}: {issue}" for issue in exc.issues]
    return [f"{file.path}: {exc.message}"]


def plan(client: Client, files: list[WorkflowFile], prune: bool, out: Output) -> list[Step]:
    """What applying `files` would do; ApplyRefused naming every problem if any file fails."""
    by_name: dict[str, list[Workflow]] = defaultdict(list)
    for workflow in client.iter_workflows():
        by_name[workflow.name].append(workflow)
    steps: list[Step] = []
    problems: list[str] = []
    for number, file in enumerate(files, start=1):
        out.progress(f"validating {number}/{len(files)} {file.path.name}")
        same = by_name.get(file.name, [])
        if len(same) > 1:
            ids = ", ".join(str(workflow.id) for workflow in same)
            problems.append(
                f"{file.path}: {len(same)} workflows are named {file.name!r} ({ids}); "
                "rename or delete all but one"
            )
            continue
        current = same[0] if same else None
        try:
            if current is None:
                after = client.create_workflow(file.definition, dry_run=True)
            else:
                after = client.replace_workflow(current.id, file.definition, dry_run=True)
        except APIError as exc:
            if exc.status_code >= 500:
                raise
            problems.append("\n".join(_problems(file, exc)))
            continue
        steps.append(Step(file, current, after))
    out.clear_progress()
    if problems:
        raise ApplyRefused("\n".join(problems))
    if prune:
        named = {file.name for file in files}
        for name in sorted(set(by_name) - named):
            for workflow in by_name[name]:
                if workflow.active:
                    after = workflow.model_copy(update={"active": False})
                    steps.append(Step(None, workflow, after))
    return steps


def diff(step: Step, inputs: frozenset[str] | None) -> list[str]:
    """A unified diff of the definition, current → after (secrets are never in either)."""
    before = to_yaml(definition_of(step.current, inputs)).splitlines() if step.current else []
    after = to_yaml(definition_of(step.after, inputs)).splitlines()
    label = str(step.file.path) if step.file else step.name
    return list(
        difflib.unified_diff(
            before, after, fromfile=f"{label} (current)", tofile=f"{label}", lineterm=""
        )
    )


def _print_diff(out: Output, lines: list[str]) -> None:
    for line in lines:
        if line.startswith(("+++", "---")):
            out.line(out.style(line, "bold"))
        elif line.startswith("+"):
            out.line(out.style(line, "green"))
        elif line.startswith("-"):
            out.line(out.style(line, "red"))
        elif line.startswith("@@"):
            out.line(out.style(line, "cyan"))
        else:
            out.line(line)


def _label(step: Step, version: int) -> str:
    return f"updated v{version}" if step.action == "updated" else step.action


def _record(step: Step, result: Workflow, dry_run: bool) -> dict[str, Any]:
    return {
        "name": step.name,
        "file": str(step.file.path) if step.file else None,
        "action": step.action,
        "id": None if dry_run and step.current is None else str(result.id),
        "version": result.version,
        "dry_run": dry_run,
    }


def show_plan(out: Output, steps: list[Step], inputs: frozenset[str] | None) -> None:
    """`--dry-run`: the diff of each workflow that would change, then what would happen."""
    records = []
    for step in steps:
        lines = diff(step, inputs) if step.action != "unchanged" else []
        records.append({**_record(step, step.after, True), "diff": lines})
        if out.json_mode:
            continue
        _print_diff(out, lines)
        verb = (
            "unchanged"
            if step.action == "unchanged"
            else f"would be {_label(step, step.after.version)}"
        )
        out.line(f"{step.name} {out.status(verb)}")
    if out.json_mode:
        out.json(records)


def execute(client: Client, out: Output, steps: list[Step]) -> None:
    """Make the changes, one line per workflow as each is done."""
    records = []
    for number, step in enumerate(steps, start=1):
        out.progress(f"applying {number}/{len(steps)} {step.name}")
        result = step.after
        if step.action == "created" and step.file is not None:
            result = client.create_workflow(step.file.definition)
        elif step.action == "updated" and step.file is not None and step.current is not None:
            result = client.replace_workflow(step.current.id, step.file.definition)
        elif step.action == "deactivated" and step.current is not None:
            result = client.update_workflow(step.current.id, active=False)
        records.append(_record(step, result, False))
        if not out.json_mode:
            out.line(f"{step.name} {out.status(_label(step, result.version))}")
    out.clear_progress()
    if out.json_mode:
        out.json(records)


def run(client: Client, out: Output, path: Path, *, dry_run: bool, prune: bool) -> None:
    steps = plan(client, load(path), prune, out)
    if dry_run:
        show_plan(out, steps, client.call(_calls.workflow_input_fields()))
    else:
        execute(client, out, steps)
