"""The run commands: get runs, run, logs, runs tail, retry, cancel."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from automateos import Client, Run, RunSummary, Workflow
from automateos._cli.output import Output
from automateos._cli.usage import UsageError

FAILED = frozenset({"failed", "cancelled"})
# `runs tail` polls at this pace and, like every loop here, ends by itself at the latest after
# this long (Ctrl-C ends it earlier).
TAIL_POLL_S = 1.0
TAIL_DEFAULT_FOR_S = 24 * 3600.0


def find_workflow(client: Client, name_or_id: str) -> Workflow:
    """The user's workflow with this name (or id); UsageError if none or several."""
    try:
        return client.get_workflow(uuid.UUID(name_or_id))
    except ValueError:
        pass
    matches = [workflow for workflow in client.iter_workflows() if workflow.name == name_or_id]
    if not matches:
        raise UsageError(f"no workflow named {name_or_id!r} (see: automateos get workflows)")
    if len(matches) > 1:
        ids = ", ".join(str(workflow.id) for workflow in matches)
        raise UsageError(f"{len(matches)} workflows are named {name_or_id!r}; use an id: {ids}")
    return matches[0]


def read_data(value: str | None) -> Any:
    """`--data '{...}'` or `--data @file.json` (`@-`: standard input) as a JSON value."""
    if value is None:
        return None
    source = "--data"
    text = value
    if value.startswith("@"):
        name = value[1:]
        source = name
        try:
            text = Path("/dev/stdin").read_text() if name == "-" else Path(name).read_text()
        except OSError as exc:
            raise UsageError(f"--data: cannot read {name}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{source}: not valid JSON: {exc}") from None


def _ago(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def run_row(run: RunSummary, names: dict[uuid.UUID, str]) -> dict[str, Any]:
    return {
        "id": str(run.id),
        "workflow": names.get(run.workflow_id, str(run.workflow_id)),
        "version": run.workflow_version,
        "status": run.status,
        "accepted": _ago(run.accepted_at),
        "duration": _duration(run.duration_ms),
        "error": (run.error or "")[:60] or None,
    }


RUN_COLUMNS = ("id", "workflow", "version", "status", "accepted", "duration", "error")


def get_runs(
    client: Client,
    out: Output,
    *,
    workflow: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> None:
    names = {item.id: item.name for item in client.iter_workflows()}
    workflow_id = find_workflow(client, workflow).id if workflow else None
    page = client.list_runs(
        status=status, workflow_id=workflow_id, since=since, until=until, limit=limit
    )
    if out.json_mode:
        out.json(page.items)
        return
    out.table([run_row(run, names) for run in page.items], RUN_COLUMNS)
    if page.next_cursor:
        out.note(f"(first {limit}; --limit for more)")


def show_run(out: Output, run: Run, name: str) -> None:
    """A run's header and its steps (the JSON form has every field)."""
    if out.json_mode:
        out.json(run)
        return
    out.line(f"run       {run.id}")
    out.line(f"workflow  {name} (v{run.workflow_version})")
    out.line(f"status    {out.status(run.status)}")
    out.line(f"accepted  {_ago(run.accepted_at)}   duration {_duration(run.duration_ms)}")
    if run.error:
        out.line(f"error     {out.style(run.error, 'red')}")
    if run.steps:
        out.line()
        rows = [
            {
                "step": step.node_id,
                "type": step.type,
                "status": step.status,
                "attempt": step.attempt,
                "duration": _duration(step.duration_ms),
                "error": step.error,
            }
            for step in run.steps
        ]
        out.table(rows, ("step", "type", "status", "attempt", "duration", "error"))


def _name_of(client: Client, workflow_id: uuid.UUID) -> str:
    return client.get_workflow(workflow_id).name


def start(client: Client, out: Output, name: str, data: Any, wait: bool, timeout: float) -> int:
    workflow = find_workflow(client, name)
    accepted = client.run_workflow(workflow.id, data)
    if not wait:
        if out.json_mode:
            out.json(accepted)
        else:
            out.line(f"run {accepted.run_id} queued (automateos logs {accepted.run_id})")
        return 0
    started = time.monotonic()

    def progress(run: Run) -> None:
        out.progress(f"run {run.id}: {run.status} ({time.monotonic() - started:.0f}s)")

    run = client.wait_for_run(accepted.run_id, timeout=timeout, on_poll=progress)
    show_run(out, run, workflow.name)
    return 1 if run.status in FAILED else 0


def logs(client: Client, out: Output, run_id: uuid.UUID) -> int:
    run = client.get_run(run_id)
    show_run(out, run, _name_of(client, run.workflow_id))
    return 0


def retry(client: Client, out: Output, run_id: uuid.UUID) -> None:
    accepted = client.retry_run(run_id)
    if out.json_mode:
        out.json(accepted)
    else:
        out.line(f"run {accepted.run_id} queued (a retry of {run_id})")


def cancel(client: Client, out: Output, run_id: uuid.UUID) -> None:
    run = client.cancel_run(run_id)
    if out.json_mode:
        out.json(run)
    else:
        out.line(f"run {run.id} {out.status(run.status)}")


def tail(client: Client, out: Output, name: str, last: int, for_s: float | None) -> None:
    """Print the workflow's latest runs, then each new run and each change of status, until
    Ctrl-C (or `for_s` seconds). One request per poll, whatever the number of runs."""
    workflow = find_workflow(client, name)
    names = {workflow.id: workflow.name}
    seen: dict[uuid.UUID, str] = {}
    deadline = time.monotonic() + (TAIL_DEFAULT_FOR_S if for_s is None else for_s)
    first = True
    if not out.json_mode:
        out.note(f"following runs of {workflow.name} (Ctrl-C to stop)")
    while True:
        # The newest 100 are plenty between two polls a second apart; `seen` keeps only them.
        page = client.list_runs(workflow_id=workflow.id, limit=100)
        fresh = [run for run in reversed(page.items) if seen.get(run.id) != run.status]
        if first:
            fresh = fresh[-last:] if last > 0 else []
        seen = {run.id: run.status for run in page.items}
        for run in fresh:
            if out.json_mode:
                out.line(json.dumps(run.model_dump(mode="json")))
            else:
                row = run_row(run, names)
                out.line(
                    f"{row['accepted']}  {row['id']}  {out.status(run.status.ljust(10))}  "
                    f"{row['duration']}  {row['error'] or ''}".rstrip()
                )
        first = False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(TAIL_POLL_S, remaining))
