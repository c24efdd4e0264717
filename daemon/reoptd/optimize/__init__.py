"""Re-optimization: the steps (retrain, tune, compress, validate) and the pipeline running them.

Steps are plugins (``reoptd.plugins.STEPS``, declared in ``steps/``); compression lives in
``compress/``. Names are imported on first use, so that the plugin declarations stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reoptd import lazy

if TYPE_CHECKING:
    from reoptd.optimize._base import RunContext, Step
    from reoptd.optimize._pipeline import RunResult, prepare, run_pipeline

__all__ = ["RunContext", "RunResult", "Step", "prepare", "run_pipeline"]

__getattr__, __dir__ = lazy.lazy_exports(
    __name__,
    {
        "RunContext": "._base",
        "Step": "._base",
        "RunResult": "._pipeline",
        "prepare": "._pipeline",
        "run_pipeline": "._pipeline",
    },
)
