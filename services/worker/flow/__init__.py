"""Flow control at the worker: concurrency keys, throttling, priority (docs/flow-control.md)."""
