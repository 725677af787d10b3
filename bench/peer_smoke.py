"""One peer alone, briefly: `python -m bench.peer_smoke --mode queue --runs 100`.

Proves an n8n set-up runs on this machine before a long `make bench-peer` relies on it: starts
it (regular or queue mode), sends each chosen workload's webhooks, waits for its database to
show them finished, prints runs/s and CPU per run, and stops everything by pid. Bounded by the
rounds' own deadlines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from bench import slow_api
from bench.peer import start_peer
from bench.peer_queue import start_queue_peer
from bench.phases import throughput_round
from bench.workloads import BY_NAME


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_smoke", description=__doc__)
    parser.add_argument("--mode", choices=["regular", "queue"], default="queue")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--workloads", nargs="+", default=["cpu", "io"], choices=["cpu", "io"])
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="automateos-peer-smoke-"))
    base.chmod(0o755)
    began = time.monotonic()
    try:
        with slow_api.serving() as slow_url:
            start = start_queue_peer if args.mode == "queue" else start_peer
            peer = start(base / "n8n", slow_url)
            try:
                print(f"{peer.name} up in {time.monotonic() - began:.0f} s", flush=True)
                for name in args.workloads:
                    result = throughput_round(peer, BY_NAME[name], args.runs)
                    shown = {k: v for k, v in result.items() if k != "cpu_s"}
                    print(f"{name}: {json.dumps(shown, default=str)}", flush=True)
            finally:
                peer.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
