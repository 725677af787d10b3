"""What every fault scenario shares: a stack of its own to break, a steady webhook burst, and the
count, in PostgreSQL, of what became of every run ingest accepted.

Only public behaviour is used (HTTP APIs, process signals, rows in PostgreSQL), so the scenarios
hold whatever the worker's insides look like.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared.db.migrate import upgrade
from tests.conftest import ApiUser, register_user
from tests.e2e.conftest import create_workflow, hook_path
from tests.fixtures.database import Database
from tests.fixtures.servers import Infra, embedded_infra
from tests.fixtures.stack import Stack, running_stack, stack_env

# A short pause, then a record. With WORKER_SLOTS runs at once the stack finishes about 40 runs
# a second, slower than a burst arrives: the burst leaves a backlog on the queue (what a Redis
# without persistence loses) that still drains in seconds.
NODES: list[dict[str, Any]] = [
    {"id": "pause", "type": "delay", "params": {"seconds": 0.2}},
    {"id": "shape", "type": "transform", "params": {"values": {"n": "{{ trigger.body.n }}"}}},
]
EVERY_SERVICE = ("auth", "workflows", "ingest", "worker")
WORKER_PROCESSES = 2
WORKER_SLOTS = 4  # runs at once per worker process (--concurrency)
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Target:
    """A whole stack on PostgreSQL and Redis of its own, one user and one webhook."""

    infra: Infra
    stack: Stack
    db: Database
    user: ApiUser
    workflow_id: str
    hook: str

    def ingest(self) -> str:
        return self.stack.url("ingest")


@contextmanager
def own_stack(
    tmp_path: Path, *, durable_postgres: bool = True, durable_redis: bool = True
) -> Iterator[Target]:
    """Servers run as `make up` runs them (durable) unless a scenario asks otherwise."""
    with embedded_infra(durable_postgres=durable_postgres, durable_redis=durable_redis) as infra:
        upgrade(infra.database_url)
        env = stack_env(infra.database_url, infra.redis_url, tmp_path / "data")
        env["AUTOMATEOS_WORKER_CONCURRENCY"] = str(WORKER_SLOTS)
        with running_stack(env, tmp_path, EVERY_SERVICE, WORKER_PROCESSES) as stack:
            user = register_user(stack)
            workflow = create_workflow(user, NODES)
            db = Database(infra.database_url)
            yield Target(infra, stack, db, user, workflow["id"], hook_path(workflow))


@dataclass
class Answer:
    at: float  # time.monotonic() when the answer came
    status: int  # 0: no HTTP answer at all
    seconds: float
    retry_after: str | None
    run_id: str | None


@dataclass
class Burst:
    """Deliveries sent by `concurrency` senders in a thread until `total` are accepted (202),
    each retried under its own `Idempotency-Key` until it is."""

    url: str
    path: str
    total: int
    concurrency: int = 8
    deadline_s: float = 90
    answers: list[Answer] = field(default_factory=list)
    _thread: threading.Thread | None = None

    @property
    def accepted(self) -> list[str]:
        return [a.run_id for a in self.answers if a.status == 202 and a.run_id]

    def start(self) -> Burst:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._send()), daemon=True)
        self._thread.start()
        return self

    def wait_accepted(self, count: int, deadline_s: float = 30) -> None:
        """Block until at least `count` deliveries were accepted."""
        end = time.monotonic() + deadline_s
        while len(self.accepted) < count:
            if time.monotonic() > end:
                raise AssertionError(f"only {len(self.accepted)} of {count} accepted in time")
            time.sleep(0.01)

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(self.deadline_s + 15)
        assert not self._thread.is_alive(), "the burst never finished"

    def refusals(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 202]

    def first_accepted_after(self, moment: float) -> float | None:
        later = [a.at for a in self.answers if a.status == 202 and a.at >= moment]
        return min(later) if later else None

    async def _send(self) -> None:
        end = time.monotonic() + self.deadline_s
        counter = iter(range(10**9))
        timeout = httpx.Timeout(10)
        async with httpx.AsyncClient(base_url=self.url, timeout=timeout) as http:

            async def deliver(n: int) -> None:
                # As a real sender does: the same delivery, under the same key, until a 202.
                # A refusal may still have been stored (Redis died before it could reply); the
                # key makes the retry answer with that run instead of starting a second one.
                headers = {"Idempotency-Key": f"delivery-{n}"}
                while time.monotonic() < end:
                    began = time.monotonic()
                    try:
                        response = await http.post(self.path, json={"n": n}, headers=headers)
                    except httpx.HTTPError:
                        self.answers.append(Answer(time.monotonic(), 0, 0, None, None))
                        await asyncio.sleep(0.05)
                        continue
                    now = time.monotonic()
                    accepted = response.status_code == 202
                    run_id = response.json().get("run_id") if accepted else None
                    retry_after = response.headers.get("retry-after")
                    self.answers.append(
                        Answer(now, response.status_code, now - began, retry_after, run_id)
                    )
                    if accepted:
                        return
                    await asyncio.sleep(0.05)  # back-pressure honoured, briefly

            async def sender() -> None:
                while len(self.accepted) < self.total and time.monotonic() < end:
                    await deliver(next(counter))

            await asyncio.gather(*(sender() for _ in range(self.concurrency)))


@dataclass(frozen=True)
class Outcome:
    """What PostgreSQL says became of the accepted runs."""

    accepted: int
    completed: int  # accepted runs that succeeded with every step recorded once
    lost: int  # accepted runs with no finished record
    duplicated: int  # runs beyond one per accepted delivery, or with a step recorded twice
    half_written: int  # finished runs whose steps are not exactly the workflow's nodes
    reruns: int  # accepted runs that took more than one delivery (allowed: at least once)
    statuses: dict[str, int]
    lost_ids: frozenset[str]


def outcome(target: Target, accepted: list[str]) -> Outcome:
    """Count the workflow's runs and their steps in PostgreSQL against the 202s."""
    rows = target.db.fetch(
        "SELECT r.id::text AS id, r.status, r.attempt,"
        " array_agg(s.node_id ORDER BY s.node_id) FILTER (WHERE s.node_id IS NOT NULL) AS steps"
        " FROM workflow_runs r LEFT JOIN run_steps s ON s.run_id = r.id"
        " WHERE r.workflow_id = $1::uuid GROUP BY r.id",
        target.workflow_id,
    )
    wanted = set(accepted)
    nodes = sorted(node["id"] for node in NODES)
    by_id = {row["id"]: row for row in rows}
    finished = {i for i in wanted if i in by_id and by_id[i]["status"] in TERMINAL}
    completed = {
        i for i in finished if by_id[i]["status"] == "succeeded" and by_id[i]["steps"] == nodes
    }
    twice = {row["id"] for row in rows if len(row["steps"] or []) > len(set(row["steps"] or []))}
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    return Outcome(
        accepted=len(wanted),
        completed=len(completed),
        lost=len(wanted - finished),
        duplicated=len(set(by_id) - wanted) + len(twice) + (len(accepted) - len(wanted)),
        half_written=len(finished - completed),
        reruns=sum(1 for i in wanted if i in by_id and by_id[i]["attempt"] > 1),
        statuses=statuses,
        lost_ids=frozenset(wanted - finished),
    )


def settle(
    target: Target, accepted: list[str], deadline_s: float, quiet_s: float | None = None
) -> tuple[Outcome, float]:
    """Wait until every accepted run is finished, the deadline passes, or (with `quiet_s`) no
    run finished for that long; the outcome and the wait."""
    began = time.monotonic()
    end = began + deadline_s
    last, changed_at = -1, began
    while True:
        counted = outcome(target, accepted)
        now = time.monotonic()
        if counted.lost != last:
            last, changed_at = counted.lost, now
        if counted.lost == 0 or now > end or (quiet_s is not None and now - changed_at > quiet_s):
            return counted, now - began
        time.sleep(0.5)


def figures(scenario: str, counted: Outcome, recovery_s: float, **extra: object) -> str:
    """The one line a scenario prints: accepted, completed, lost, duplicated, recovery."""
    more = "".join(f" {key}={value}" for key, value in extra.items())
    return (
        f"{scenario}: accepted={counted.accepted} completed={counted.completed}"
        f" lost={counted.lost} duplicated={counted.duplicated} recovery_s={recovery_s:.1f}{more}"
    )


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, children first (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The command name may hold spaces and parentheses: the fields follow the last ")".
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            parents.setdefault(int(ppid), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found.extend(children)
        todo.extend(children)
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
