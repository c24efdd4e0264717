"""What the steps of a re-optimization run share.

The pipeline builds one ``RunContext`` and hands it to each step in the policy's order; a step
reads what earlier steps left and adds its own part. ``Step.run`` returns the step's record
(plain numbers and strings) that ends up in the run's report and in ``optimization_runs.steps``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from reoptd.models import Model
from reoptd.monitor import Champion
from reoptd.policy import Policy


@dataclass
class RunContext:
    policy: Policy
    now: datetime
    train: pd.DataFrame  # labelled rows the challenger may learn from, oldest first
    holdout: pd.DataFrame  # the newest labelled rows: neither model trained on them
    champion: Champion | None
    challenger: Model | None = None
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    promote: bool = False
    reason: str = ""
    storage: str | None = None  # Optuna RDB storage URL (the daemon's database); None: in memory
    study_prefix: str = "reoptd.model"  # studies are named "<prefix>.<run start>"
    champion_params: dict[str, Any] = field(default_factory=dict)
    progress: bool = False  # show a progress bar (interactive commands)
    # set by the compress step: compressing the champion itself (no retrain in the pipeline),
    # whether a compressed candidate was chosen, and why
    compressing_champion: bool = False
    compressed: bool = False
    compress_reason: str = ""
    # set by retrain, tune and augment: how the challenger was trained ({"params", "warm",
    # "augment"}), so that a later step trains its own candidates the same way
    recipe: dict[str, Any] = field(default_factory=dict)


class Step(Protocol):
    name: str

    def run(self, ctx: RunContext) -> dict[str, Any]:
        """Do the step's work on ``ctx``; return its record. Raise ``OptimizeError`` to abort."""
        ...
