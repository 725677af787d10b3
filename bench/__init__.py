"""Benchmarks: `make bench` runs them (see mk/bench.mk)."""
