"""Re-optimization: the steps (retrain, tune, compress, validate) and the pipeline running them."""

from reoptd.optimize._base import RunContext, Step
from reoptd.optimize._pipeline import STEPS, RunResult, prepare, run_pipeline

__all__ = ["STEPS", "RunContext", "RunResult", "Step", "prepare", "run_pipeline"]
