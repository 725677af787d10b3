"""The worker: processes consuming the RQ queue and running the run engine, under one supervisor.

`python -m services.worker --processes N` starts the supervisor (`supervisor.py`), which runs N
worker processes (`process.py`) and serves /healthz, /readyz and /metrics for all of them.
"""
