"""Evidently's own HTML drift report for a check, for a person investigating drift.

``reoptd check MODEL --html OUT.html`` calls ``write_drift_html`` after the cycle: Evidently's
``DataDriftPreset`` with the policy's methods and thresholds, on the champion's reference against
the window the check read, rendered with all its plots. The daemon itself never renders.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path

import pandas as pd
from evidently import Dataset, Report
from evidently.presets import DataDriftPreset

from reoptd.errors import DataError
from reoptd.monitor._drift import data_definition
from reoptd.policy import Policy


def report_drift_share(policy: Policy) -> float:
    """The share of drifted features the report calls "dataset drift": the policy's
    drift_share trigger (what starts a re-optimization), else ``monitor.drift.drift_share``."""
    for trigger in policy.triggers:
        if trigger.drift_share is not None:
            return float(trigger.drift_share.above)
    return policy.monitor.drift.drift_share


def drift_preset(policy: Policy) -> DataDriftPreset:
    """``DataDriftPreset`` configured as the policy's ``monitor.drift`` (the lean path's tests),
    its dataset threshold the one the policy acts on (``report_drift_share``)."""
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
        drift_share=report_drift_share(policy),
    )


def write_drift_html(
    policy: Policy,
    reference: pd.DataFrame,
    window: pd.DataFrame,
    path: Path,
    *,
    version: int | None = None,
    window_range: tuple[datetime, datetime] | None = None,
) -> Path:
    """Render the report to ``path``, titled with the model, the champion ``version`` and the
    checked ``window_range``; raise ``DataError`` naming the columns it cannot use."""
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
    title = report_title(policy, version, window_range)
    path.write_text(_titled(path.read_text(encoding="utf-8"), title), encoding="utf-8")
    return path


def report_title(
    policy: Policy, version: int | None, window_range: tuple[datetime, datetime] | None
) -> str:
    """ "Drift of churn v3, window 2026-03-14 10:00 to 12:00 UTC (dataset drift at 30% ...)"."""
    title = f"Drift of {policy.model}" + (f" v{version}" if version is not None else "")
    if window_range is not None:
        start, end = window_range
        same_day = start.date() == end.date()
        title += (
            f", window {start:%Y-%m-%d %H:%M} to {end:%H:%M}"
            if same_day
            else f", window {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
        ) + " UTC"
    share = report_drift_share(policy)
    return f"{title} (dataset drift when {share:.0%} of features drift, as the policy's trigger)"


def _titled(page: str, title: str) -> str:
    """Evidently's page with ``title`` as its <title> and as a heading above the report."""
    text = html.escape(title)
    page = re.sub(r"<title>.*?</title>", f"<title>{text}</title>", page, count=1, flags=re.S)
    heading = f'<h1 style="font-family: sans-serif; margin: 16px">{text}</h1>'
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + heading, page, count=1)
