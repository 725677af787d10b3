"""The run engine: claim a run, execute its nodes in order, record every step."""

from services.worker.engine.runner import NodeRunner, RunOutcome, StepRecord
from services.worker.engine.service import RunEngine, run_budget
from services.worker.engine.versions import VersionCache

__all__ = ["NodeRunner", "RunEngine", "RunOutcome", "StepRecord", "VersionCache", "run_budget"]
