"""Target drift: the labels of the current window against the labels of the reference.

Once labels arrive, the distribution of the target itself can be tested: the churn rate going
from 20% to 35% says the world changed even when no feature drifted. Same lean path as
``PredictionDrift``: Evidently's own stat tests, the reference side prepared once per champion.
The target is categorical for classifiers (class frequencies), numerical for regressors.
"""

from __future__ import annotations

import pandas as pd
from evidently.legacy.core import ColumnType

from reoptd.monitor._drift import FeatureDrift, _compare, _prepare
from reoptd.policy import Policy


class TargetDrift:
    """Drift of the target column: current labelled rows vs the champion's reference labels."""

    def __init__(self, policy: Policy, reference_target: pd.Series) -> None:
        self.kind = (
            ColumnType.Categorical if policy.task == "classification" else ColumnType.Numerical
        )
        self.name = policy.target
        self.reference = _prepare(self._values(reference_target), self.kind, None, None, self.name)

    def _values(self, values: pd.Series) -> pd.Series:
        values = values.dropna()
        return values.astype(str) if self.kind == ColumnType.Categorical else values.astype(float)

    def check(self, current_target: pd.Series) -> FeatureDrift:
        return _compare(self.reference, self._values(current_target), self.name)
