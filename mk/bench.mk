# Benchmarks: bounded runs that print their numbers (never part of `make test`). Loopback only.
#   make bench       our side and its baselines (bare FastAPI + LPUSH, bare RQ no-op jobs);
#                    report in .bench/ (gitignored)
#   make bench-peer  the same side by side with n8n 2.8.4 (installed into .tools/ on first use);
#                    regenerates BENCHMARKS.md and docs/bench/
# Each finishes in under 15 minutes; see BENCHMARKS.md for what is measured and how.

BENCH_ARGS ?=
# bench.compare's own flags (`python -m bench.compare --help`), apart from the other benches'.
COMPARE_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: bench bench-peer bench-ingest bench-tools bench-n8n

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	@rm -f $(VENV)/.bench-* && touch $@

bench-tools: $(BENCH_STAMP) ## wrk from Debian when missing (needs root; else the bench uses its asyncio client)
	@command -v wrk >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq --no-install-recommends wrk >/dev/null; \
		else echo "bench-tools: no wrk (sudo apt-get install wrk); using the asyncio load generator"; fi; }

bench-n8n: $(BENCH_STAMP) ## install n8n 2.8.4 into .tools/ (once; ~4-7 minutes and 2.3 GB cold)
	$(PY) -m bench.peer install

bench: bench-tools ## our side + baselines: ingest, runs/s per workload, latency, memory, scaling, history (COMPARE_ARGS=...)
	$(PY) -m bench.compare $(COMPARE_ARGS)

bench-peer: bench-tools bench-n8n ## side by side with n8n 2.8.4, alternating rounds; rewrites BENCHMARKS.md + docs/bench/
	$(PY) -m bench.compare --peer --out docs/bench --report BENCHMARKS.md $(COMPARE_ARGS)

bench-ingest: $(STAMP) ## ingest vs a bare FastAPI + Redis LPUSH: req/s, p50/p99, ratio (BENCH_ARGS="--dedupe --signed")
	$(PY) -m bench.ingest $(BENCH_ARGS)

.PHONY: bench-worker
bench: bench-worker

bench-worker: $(STAMP) ## worker engine: I/O-bound and CPU-light runs/s, waits, parked runs, RSS, as ratios to --concurrency 1
	$(PY) -m bench.worker $(BENCH_ARGS)
