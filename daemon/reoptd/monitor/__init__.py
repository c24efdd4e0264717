"""Monitoring: drift per feature (Evidently), data quality, the policy's metric on labelled rows.

Drift methods are plugins (``reoptd.plugins.DRIFT_METHODS``, declared in ``drift_methods``).
Names are imported on first use: Evidently is heavy, and ``drift_methods`` must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reoptd import lazy

if TYPE_CHECKING:
    from reoptd.monitor._check import Champion, CheckResult, check, metric_names
    from reoptd.monitor._drift import (
        DriftDetector,
        FeatureDrift,
        ReferenceStats,
        feature_drift,
        feature_drift_report,
    )
    from reoptd.monitor._html import write_drift_html
    from reoptd.monitor._performance import (
        NEEDS_SCORE,
        business_value,
        evaluate,
        label_metrics,
        score,
    )
    from reoptd.monitor._quality import Quality, QualityReference

__all__ = [
    "NEEDS_SCORE",
    "Champion",
    "CheckResult",
    "DriftDetector",
    "FeatureDrift",
    "Quality",
    "QualityReference",
    "ReferenceStats",
    "business_value",
    "check",
    "evaluate",
    "feature_drift",
    "feature_drift_report",
    "label_metrics",
    "metric_names",
    "score",
    "write_drift_html",
]

__getattr__, __dir__ = lazy.lazy_exports(
    __name__,
    {
        "Champion": "._check",
        "CheckResult": "._check",
        "check": "._check",
        "metric_names": "._check",
        "DriftDetector": "._drift",
        "FeatureDrift": "._drift",
        "ReferenceStats": "._drift",
        "feature_drift": "._drift",
        "feature_drift_report": "._drift",
        "write_drift_html": "._html",
        "NEEDS_SCORE": "._performance",
        "business_value": "._performance",
        "evaluate": "._performance",
        "label_metrics": "._performance",
        "score": "._performance",
        "Quality": "._quality",
        "QualityReference": "._quality",
    },
)
