"""Per-feature drift with Evidently: one ``ValueDrift`` per column, Evidently's own verdicts.

Evidently picks the statistical test per column unless the policy names one (``method``,
``threshold`` for numerical columns, ``cat_method``, ``cat_threshold`` for categorical ones,
``per_column`` overrides). The verdict of each column is the status of Evidently's own drift test,
so "drifted" means exactly what it means in an Evidently report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift

from reoptd.policy import Policy


@dataclass(frozen=True)
class FeatureDrift:
    score: float
    drifted: bool
    method: str
    threshold: float | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def feature_drift(
    policy: Policy, reference: pd.DataFrame, current: pd.DataFrame
) -> dict[str, FeatureDrift]:
    """Compare ``current`` with ``reference`` on every feature of ``policy``."""
    definition = DataDefinition(
        numerical_columns=policy.features.numerical,
        categorical_columns=policy.features.categorical,
    )
    columns = policy.features.all
    ref = Dataset.from_pandas(reference[columns], data_definition=definition)
    cur = Dataset.from_pandas(current[columns], data_definition=definition)
    report = Report([_metric(policy, c) for c in columns], include_tests=True)
    result = report.run(cur, ref).dict()

    by_id = {m["id"]: m for m in result["metrics"]}
    verdicts = {t["metric_config"]["metric_id"]: t["status"] for t in result["tests"]}
    drift: dict[str, FeatureDrift] = {}
    for metric_id, metric in by_id.items():
        config = metric["config"]
        drift[config["column"]] = FeatureDrift(
            score=float(metric["value"]),
            drifted=verdicts.get(metric_id) == "FAIL",
            method=str(config.get("method")),
            threshold=config.get("threshold"),
        )
    return {c: drift[c] for c in columns}


def _metric(policy: Policy, column: str) -> ValueDrift:
    spec = policy.monitor.drift
    override = spec.per_column.get(column)
    if column in policy.features.categorical:
        method, threshold = spec.cat_method, spec.cat_threshold
    else:
        method, threshold = spec.method, spec.threshold
    if override is not None:
        method = override.method or method
        threshold = override.threshold if override.threshold is not None else threshold
    return ValueDrift(column=column, method=method, threshold=threshold)
