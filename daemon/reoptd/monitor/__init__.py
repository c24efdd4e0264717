"""Monitoring: drift per feature (Evidently), data quality, the policy's metric on labelled rows."""

from reoptd.monitor._check import Champion, CheckResult, check, metric_names
from reoptd.monitor._drift import (
    DriftDetector,
    FeatureDrift,
    feature_drift,
    feature_drift_report,
)
from reoptd.monitor._performance import evaluate, score
from reoptd.monitor._quality import Quality, QualityReference

__all__ = [
    "Champion",
    "CheckResult",
    "DriftDetector",
    "FeatureDrift",
    "Quality",
    "QualityReference",
    "check",
    "evaluate",
    "feature_drift",
    "feature_drift_report",
    "metric_names",
    "score",
]
