# Benchmarks: bounded runs that print their numbers (never part of `make test`). Loopback only.
#   make bench       every benchmark of our own: the worker engine, retention, and bench.compare
#                    (our side and its baselines: bare FastAPI + LPUSH, bare RQ no-op jobs;
#                    report in .bench/, gitignored); under 15 minutes in all
#   make bench-peer  bench.compare side by side with n8n 2.8.4, regular and queue mode (installed
#                    into .tools/ on first use); regenerates BENCHMARKS.md and docs/bench/ (its
#                    "Before engine v3 (baseline)" section is kept)
# Other areas add theirs as prerequisites of `bench` in their own mk/<area>.mk.

BENCH_ARGS ?=
# bench.compare's own flags (`python -m bench.compare --help`), apart from the other benches'.
COMPARE_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: bench bench-peer bench-ingest bench-retention bench-tools bench-n8n

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

# The other benchmarks run first; bench.compare gets what is left of the 15 minutes. Ingest
# against the LPUSH baseline is part of bench.compare, so bench-ingest (its variants) is apart.
bench: bench-tools bench-retention ## every benchmark; ours side of bench.compare: ingest, runs/s per workload, latency, memory, scaling, history (COMPARE_ARGS=...)
	$(PY) -m bench.compare --budget 9 $(COMPARE_ARGS)

bench-peer: bench-tools bench-n8n ## side by side with n8n 2.8.4 (regular + queue mode), runs/s and CPU per run; rewrites BENCHMARKS.md + docs/bench/
	$(PY) -m bench.compare --peer --out docs/bench --report BENCHMARKS.md $(COMPARE_ARGS)

bench-ingest: $(STAMP) ## ingest vs a bare FastAPI + Redis LPUSH: req/s, p50/p99, ratio (BENCH_ARGS="--dedupe --signed")
	$(PY) -m bench.ingest $(BENCH_ARGS)

.PHONY: bench-worker
bench: bench-worker

bench-worker: $(STAMP) ## worker engine: runs/s and CPU per run (1/2/4 processes), waits, parked runs, RSS (BENCH_ARGS="--stages cost")
	$(PY) -m bench.worker $(BENCH_ARGS)

bench-retention: $(STAMP) ## worker-style writes with and without the retention pruner deleting 10^5 old runs (BENCH_ARGS="--runs 1000000")
	$(PY) -m bench.retention $(BENCH_ARGS)
