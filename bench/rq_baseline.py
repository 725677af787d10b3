"""Bare RQ no-op jobs: what RQ itself costs per job, the floor under the worker's runs/s.

`python -m bench.rq_baseline REDIS_URL JOBS PROCESSES` enqueues JOBS no-op jobs (pipelined,
JSON serializer, the same options our runs carry) on a queue of its own, then drains it with
PROCESSES `SimpleWorker`s in burst mode (the class our worker builds on) and prints
{"jobs": N, "seconds": S, "jobs_per_s": R} as JSON. Bounded: each drain has a deadline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

QUEUE = "bench-rq-noop"


def noop(payload: dict[str, object]) -> None:
    """The job: nothing at all."""


def enqueue(url: str, jobs: int) -> None:
    """Put `jobs` no-op jobs on the queue in pipelined batches."""
    connection = redis.Redis.from_url(url)
    queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
    connection.delete(queue.key)
    for start in range(0, jobs, 500):
        with connection.pipeline() as pipe:
            for _ in range(start, min(jobs, start + 500)):
                queue.enqueue_call(
                    "bench.rq_baseline.noop",
                    args=({"run_id": str(uuid.uuid4())},),
                    result_ttl=0,
                    pipeline=pipe,
                )
            pipe.execute()


class DrainWorker(SimpleWorker):
    """A stock SimpleWorker whose teardown does not wait on its pub/sub thread.

    RQ 3.0 starts that thread with `run_in_thread(sleep_time=60)`, and redis-py 8.2's `stop()`
    joins it: when the UNSUBSCRIBE reply is read before the run flag drops, the join waits out a
    60 s read. Here one drain in three stalled 60 s after its last job (3-5 jobs/s). The thread
    is a daemon and the process ends right after, so nothing is left behind.
    """

    def unsubscribe(self) -> None:
        if self.pubsub_thread:
            self.pubsub.unsubscribe()
            self.pubsub_thread.stop(timeout=0)


def drain(url: str) -> None:
    """One burst SimpleWorker until the queue is empty; prints when it was ready and done."""
    connection = redis.Redis.from_url(url)
    queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
    worker = DrainWorker([queue], connection=connection, serializer=JSONSerializer)
    ready = time.time()
    worker.work(burst=True, logging_level="WARNING")
    print(json.dumps({"ready": ready, "done": time.time()}))


def measure(url: str, jobs: int, processes: int, deadline_s: float = 120) -> dict[str, float]:
    """Enqueue, then time `processes` burst workers draining the queue.

    The clock starts when the first worker is ready (imports and connection done), so process
    start-up, which a long-running worker pays once, is not charged to the jobs.
    """
    enqueue(url, jobs)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.rq_baseline", "--drain", url],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    marks: list[dict[str, float]] = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=deadline_s)
            marks.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    seconds = max(m["done"] for m in marks) - min(m["ready"] for m in marks)
    return {"jobs": jobs, "processes": processes, "seconds": seconds, "jobs_per_s": jobs / seconds}


if __name__ == "__main__":
    if sys.argv[1] == "--drain":
        drain(sys.argv[2])
    else:
        print(json.dumps(measure(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
