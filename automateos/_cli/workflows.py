"""The workflow commands besides apply: get workflows, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from automateos import Client, Workflow, _calls
from automateos._cli import files
from automateos._cli.output import Output


def _trigger(workflow: Workflow) -> str:
    trigger = workflow.trigger
    if trigger.get("type") == "schedule":
        return f"cron {trigger['cron']}" if trigger.get("cron") else f"every {trigger.get('every')}"
    return "webhook (signed)" if trigger.get("signature") else "webhook"


def get_workflows(client: Client, out: Output) -> None:
    workflows = list(client.iter_workflows())
    if out.json_mode:
        out.json(workflows)
        return
    rows: list[dict[str, Any]] = [
        {
            "name": workflow.name,
            "active": workflow.active,
            "version": workflow.version,
            "trigger": _trigger(workflow),
            "nodes": len(workflow.nodes),
            "updated": workflow.updated_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            "id": str(workflow.id),
        }
        for workflow in workflows
    ]
    out.table(rows, ("name", "active", "version", "trigger", "nodes", "updated", "id"))


def export(client: Client, out: Output, folder: Path) -> None:
    """Every workflow as `<folder>/<name>.yaml`, in the form `apply` reads back unchanged."""
    out.progress("reading workflows")
    workflows = list(client.iter_workflows())
    written = files.export(workflows, folder, client.call(_calls.workflow_input_fields()))
    names = [workflow.name for workflow in workflows]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if out.json_mode:
        out.json([{"name": wf.name, "id": str(wf.id), "file": str(path)} for wf, path in written])
    else:
        for workflow, path in written:
            out.line(f"{workflow.name} -> {path}")
    if repeated:
        out.note(
            f"several workflows share a name ({', '.join(repeated)}): apply identifies a "
            "workflow by name, so rename them before applying this folder"
        )
