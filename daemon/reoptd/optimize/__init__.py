"""Re-optimization: the steps (retrain, tune, compress, validate) and the pipeline running them.

The pipeline gathers a run's rows and hands them to an ``Executor`` (``_runner.py``): in the
calling thread, in a child process stopped at a step's budget (``_process.py``), or as a task on
a Ray cluster (``_ray.py``).

Steps are plugins (``reoptd.plugins.STEPS``, declared in ``steps/``); compression lives in
``compress/``. Names are imported on first use, so that the plugin declarations stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reoptd import lazy

if TYPE_CHECKING:
    from reoptd.optimize._base import RunContext, Step
    from reoptd.optimize._pipeline import RunResult, prepare, run_pipeline
    from reoptd.optimize._process import LocalProcessExecutor
    from reoptd.optimize._ray import RayExecutor
    from reoptd.optimize._runner import Execution, Executor, InlineExecutor, open_executor

__all__ = [
    "Execution",
    "Executor",
    "InlineExecutor",
    "LocalProcessExecutor",
    "RayExecutor",
    "RunContext",
    "RunResult",
    "Step",
    "open_executor",
    "prepare",
    "run_pipeline",
]

__getattr__, __dir__ = lazy.lazy_exports(
    __name__,
    {
        "RunContext": "._base",
        "Step": "._base",
        "RunResult": "._pipeline",
        "prepare": "._pipeline",
        "run_pipeline": "._pipeline",
        "Execution": "._runner",
        "Executor": "._runner",
        "InlineExecutor": "._runner",
        "open_executor": "._runner",
        "LocalProcessExecutor": "._process",
        "RayExecutor": "._ray",
    },
)
