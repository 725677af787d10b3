"""Helpers of the flow-control tests: jobs with flow fields, Redis state of a key."""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

import redis.asyncio as aioredis

from shared.flow import REDIS_PREFIX
from shared.queue import RunJob
from tests.services.worker.harness import Queue, Workflow, run_job


def flow_job(workflow: Workflow, body: Any, flow: dict[str, Any]) -> RunJob:
    job = run_job(workflow, body)
    job["flow"] = flow  # type: ignore[typeddict-item]
    return job


async def put_in_order(
    jobs: Queue, workflow: Workflow, bodies: list[Any], flow: dict[str, Any], gap_s: float = 0.05
) -> list[str]:
    """Enqueue one job per body, a little apart, so arrival order is unambiguous."""
    ids = []
    for body in bodies:
        ids.append(await jobs.put(flow_job(workflow, body, flow)))
        await asyncio.sleep(gap_s)
    return ids


async def flow_keys(client: aioredis.Redis, workflow: Workflow) -> dict[str, int]:
    """Every concurrency structure left for the workflow, with its size (holders, waiting...)."""
    found: dict[str, int] = {}
    async for raw in client.scan_iter(match=f"{REDIS_PREFIX}conc:{workflow.id}:*"):
        key = raw.decode()
        kind = await client.type(key)
        if kind == b"zset":
            found[key] = int(await client.zcard(key))
        elif kind == b"hash":
            found[key] = int(await client.hlen(key))
    return {key: size for key, size in found.items() if size}


async def holds(client: aioredis.Redis, run_ids: list[str]) -> list[str]:
    """The runs among `run_ids` that still hold a place."""
    held = []
    for run_id in run_ids:
        if await client.exists(f"{REDIS_PREFIX}hold:{run_id}"):
            held.append(run_id)
    return held


def assert_one_at_a_time_in_order(runs: list[dict[str, Any]]) -> None:
    """Runs of one key with limit 1: each started after the previous one finished."""
    for earlier, later in itertools.pairwise(runs):
        assert later["started_at"] >= earlier["finished_at"], (earlier, later)


def signal_tree(pid: int, signum: int) -> None:
    """Signal a process and its children (a worker supervisor and its worker processes)."""
    children = _children(pid)
    os.kill(pid, signum)
    for child in children:
        os.kill(child, signum)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found
