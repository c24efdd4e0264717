"""Multivariate drift: can a classifier tell the reference rows from the current window's?

Per-column tests see each feature's distribution alone; a change in how features move together
(a correlation that appears or flips) leaves every marginal intact and passes them all. A domain
classifier sees the joint distribution: a gradient-boosted model learns "reference or current"
from all features at once, and its cross-validated ROC AUC is the signal. Near 0.5 it cannot
tell them apart; the further above, the more the joint distribution moved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score
from threadpoolctl import threadpool_limits

from reoptd.policy import Policy


@dataclass(frozen=True)
class MultivariateDrift:
    auc: float
    drifted: bool
    threshold: float
    rows: int  # rows of each side the classifier saw

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def domain_classifier_auc(
    policy: Policy, reference: pd.DataFrame, current: pd.DataFrame, *, seed: int = 0
) -> MultivariateDrift:
    """Cross-validated ROC AUC of reference-vs-current on the policy's features.

    Both sides are sampled to the same size (at most ``monitor.multivariate.sample_rows``) so the
    classes are balanced and an AUC of 0.5 means "no difference" whatever the window sizes.
    """
    spec = policy.monitor.multivariate
    n = min(len(reference), len(current), spec.sample_rows)
    if n < 2 * spec.folds:
        raise ValueError(f"multivariate drift needs at least {2 * spec.folds} rows on each side")
    rng = np.random.default_rng(seed)
    ref = reference.iloc[rng.choice(len(reference), n, replace=False)]
    cur = current.iloc[rng.choice(len(current), n, replace=False)]
    x = _encode(policy, pd.concat([ref, cur], ignore_index=True))
    y = np.r_[np.zeros(n), np.ones(n)]
    # HistGradientBoosting takes at most 255 categories per column; beyond that, codes as numbers
    categorical = [
        c in policy.features.categorical and x[:, i].max() < 255
        for i, c in enumerate(policy.features.all)
    ]
    classifier = HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.1,
        max_leaf_nodes=15,
        categorical_features=categorical if any(categorical) else None,
        random_state=seed,
    )
    folds = StratifiedKFold(n_splits=spec.folds, shuffle=True, random_state=seed)
    # One thread: on a few thousand rows OpenMP's start-up and contention with the daemon's other
    # work cost more than they save (measured ~8x slower on a busy 2-core machine).
    with threadpool_limits(limits=1):
        scores = cross_val_score(classifier, x, y, cv=folds, scoring="roc_auc")
    auc = float(np.mean(scores))
    return MultivariateDrift(
        auc=auc, drifted=auc >= spec.threshold, threshold=spec.threshold, rows=n
    )


def _encode(policy: Policy, frame: pd.DataFrame) -> np.ndarray:
    """Numerical features as floats, categorical ones as integer codes (shared across sides)."""
    columns = []
    for column in policy.features.all:
        values = frame[column]
        if column in policy.features.categorical:
            codes = pd.Categorical(values.astype(str)).codes.astype(float)
            columns.append(codes)
        else:
            columns.append(values.to_numpy(dtype=float))
    return np.column_stack(columns)
