# Benchmarks: bounded runs that print their numbers; `make bench` runs every one.
# Other areas add theirs as prerequisites of `bench` in their own mk/<area>.mk.

BENCH_ARGS ?=

.PHONY: bench bench-ingest bench-retention

bench: bench-ingest bench-retention ## run every benchmark

bench-ingest: $(STAMP) ## ingest vs a bare FastAPI + Redis LPUSH: req/s, p50/p99, ratio (BENCH_ARGS="--dedupe --signed")
	$(PY) -m bench.ingest $(BENCH_ARGS)

.PHONY: bench-worker
bench: bench-worker

bench-worker: $(STAMP) ## worker engine: I/O-bound and CPU-light runs/s, waits, parked runs, RSS, as ratios to --concurrency 1
	$(PY) -m bench.worker $(BENCH_ARGS)

bench-retention: $(STAMP) ## worker-style writes with and without the retention pruner deleting 10^5 old runs (BENCH_ARGS="--runs 1000000")
	$(PY) -m bench.retention $(BENCH_ARGS)
