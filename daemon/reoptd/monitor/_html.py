"""Evidently's own HTML drift report for a check, for a person investigating drift.

``reoptd check MODEL --html OUT.html`` calls ``write_drift_html`` after the cycle: Evidently's
``DataDriftPreset`` with the policy's methods and thresholds, on the champion's reference against
the window the check read, rendered with all its plots. The daemon itself never renders.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from evidently import Dataset, Report
from evidently.presets import DataDriftPreset

from reoptd.errors import DataError
from reoptd.monitor._drift import data_definition
from reoptd.policy import Policy


def drift_preset(policy: Policy) -> DataDriftPreset:
    """``DataDriftPreset`` configured as the policy's ``monitor.drift`` (the lean path's tests)."""
    spec = policy.monitor.drift
    methods = {c: o.method for c, o in spec.per_column.items() if o.method}
    thresholds = {c: o.threshold for c, o in spec.per_column.items() if o.threshold is not None}
    return DataDriftPreset(
        columns=policy.features.monitored,
        num_method=spec.method,
        num_threshold=spec.threshold,
        cat_method=spec.cat_method,
        cat_threshold=spec.cat_threshold,
        text_method=spec.text_method,
        text_threshold=spec.text_threshold,
        per_column_method=methods or None,
        per_column_threshold=thresholds or None,
        drift_share=spec.drift_share,
    )


def write_drift_html(
    policy: Policy, reference: pd.DataFrame, window: pd.DataFrame, path: Path
) -> Path:
    """Render the report to ``path``; raise ``DataError`` naming the columns it cannot use."""
    columns = policy.features.monitored
    missing = [c for c in columns if c not in window.columns or c not in reference.columns]
    if missing:
        raise DataError(
            f"HTML report for {policy.model!r}: column(s) {', '.join(missing)} missing from the"
            " window or the champion's reference",
            column=missing[0],
        )
    definition = data_definition(policy)
    try:
        snapshot = Report([drift_preset(policy)]).run(
            Dataset.from_pandas(window[columns], data_definition=definition),
            Dataset.from_pandas(reference[columns], data_definition=definition),
        )
    except ValueError as exc:  # e.g. a column Evidently cannot test: the lean check says which
        raise DataError(
            f"HTML report for {policy.model!r}: Evidently refused the data: {exc}"
        ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path
