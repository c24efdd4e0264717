"""Monitoring: drift per feature (Evidently), the policy's metric on labelled rows."""

from reoptd.monitor._check import Champion, CheckResult, check, metric_names
from reoptd.monitor._drift import FeatureDrift, feature_drift
from reoptd.monitor._performance import evaluate, score

__all__ = [
    "Champion",
    "CheckResult",
    "FeatureDrift",
    "check",
    "evaluate",
    "feature_drift",
    "metric_names",
    "score",
]
