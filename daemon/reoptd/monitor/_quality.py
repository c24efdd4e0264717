"""Data quality of a window against the champion's reference: the problems drift tests miss.

Per check, for every monitored column: the share of missing values; for numerical columns the
share of values outside the reference's [min, max]; for categorical columns the share of rows
with a category the reference never had; and schema changes (policy columns missing from the
window, columns whose type changed since the reference, and, listed but not flagged, columns the
policy does not know). ``monitor.quality`` sets the tolerances above which a column is flagged.

There is deliberately no re-optimization trigger on quality: broken upstream data is a reason
to alert a person (the exported gauges), not to retrain a model on it.

``QualityReference`` is built once per champion (the reference's ranges and categories) and its
``check`` called for every window; ``Champion.quality()`` in ``_check.py`` caches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from reoptd.monitor._fast import as_categories
from reoptd.policy import Policy

_EXAMPLES = 5  # unseen categories listed per column


def _type_family(values: pd.Series) -> str:
    if ptypes.is_bool_dtype(values):
        return "bool"
    if ptypes.is_numeric_dtype(values):
        return "number"
    if ptypes.is_datetime64_any_dtype(values):
        return "datetime"
    return "text"


@dataclass
class Quality:
    """One window's data quality, as stored under ``checks.signals["quality"]``."""

    missing_share: dict[str, float] = field(default_factory=dict)
    out_of_range_share: dict[str, float] = field(default_factory=dict)
    unseen_share: dict[str, float] = field(default_factory=dict)
    unseen_examples: dict[str, list[str]] = field(default_factory=dict)
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    retyped_columns: dict[str, str] = field(default_factory=dict)  # column -> "number -> text"
    flagged: list[str] = field(default_factory=list)  # one line per problem over tolerance

    def to_dict(self) -> dict[str, object]:
        return {
            "missing_share": self.missing_share,
            "out_of_range_share": self.out_of_range_share,
            "unseen_share": self.unseen_share,
            "unseen_examples": self.unseen_examples,
            "schema": {
                "missing": self.missing_columns,
                "extra": self.extra_columns,
                "retyped": self.retyped_columns,
            },
            "flagged": self.flagged,
        }


class QualityReference:
    """The reference side of the quality checks, computed once per champion."""

    def __init__(self, policy: Policy, reference: pd.DataFrame) -> None:
        features = policy.features
        self.columns = list(features.monitored)
        self.numerical = list(features.numerical)
        self.categorical = list(features.categorical)
        self.known = {*features.monitored, policy.target, policy.timestamp}
        if policy.id is not None:
            self.known.add(policy.id)
        self.tolerance = policy.monitor.quality
        self.types = {c: _type_family(reference[c]) for c in self.columns if c in reference}
        self.ranges: dict[str, tuple[float, float]] = {}
        for column in self.numerical:
            if self.types.get(column) == "number":
                values = reference[column].to_numpy(dtype=float, na_value=np.nan)
                values = values[np.isfinite(values)]
                if values.size:
                    self.ranges[column] = (float(values.min()), float(values.max()))
        self.categories: dict[str, pd.Index] = {}
        for column in self.categorical:
            if column in reference:
                present = reference[column].dropna().astype(str)
                self.categories[column] = pd.Index(pd.unique(present.to_numpy()))

    def check(self, window: pd.DataFrame) -> Quality:
        out = Quality()
        tol = self.tolerance
        rows = max(len(window), 1)
        out.missing_columns = [c for c in self.columns if c not in window.columns]
        out.extra_columns = [c for c in window.columns if c not in self.known]
        for column in self.columns:
            if column not in window.columns:
                out.missing_share[column] = 1.0
                out.flagged.append(f"{column}: column missing from the window")
                continue
            values = window[column]
            kind = _type_family(values)
            was = self.types.get(column)
            missing = int(values.isna().sum())  # one scan: a string column's is not cheap
            if was is not None and kind != was and missing < len(values):
                out.retyped_columns[column] = f"{was} -> {kind}"
                out.flagged.append(f"{column}: type changed ({was} -> {kind})")
            share = float(missing) / rows
            out.missing_share[column] = share
            if share > tol.missing_share:
                out.flagged.append(
                    f"{column}: {share:.1%} missing values (tolerance {tol.missing_share:.1%})"
                )
            if column in self.ranges and kind == "number":
                low, high = self.ranges[column]
                array = values.to_numpy(dtype=float, na_value=np.nan)
                outside = float(np.count_nonzero((array < low) | (array > high))) / rows
                out.out_of_range_share[column] = outside
                if outside > tol.out_of_range_share:
                    out.flagged.append(
                        f"{column}: {outside:.1%} of values outside the reference range"
                        f" [{low:g}, {high:g}] (tolerance {tol.out_of_range_share:.1%})"
                    )
            if column in self.categories:
                # the present values as strings, hashed once: a category is looked up once,
                # not once per row (categories in order of first appearance)
                present = as_categories(values).cat
                unseen = ~present.categories.isin(self.categories[column])
                share = 0.0
                if unseen.any():
                    counts = np.bincount(present.codes.to_numpy(), minlength=len(unseen))
                    share = float(counts[unseen].sum()) / rows
                    examples = present.categories[unseen][:_EXAMPLES]
                    out.unseen_examples[column] = [str(v) for v in examples]
                out.unseen_share[column] = share
                if share > tol.unseen_share:
                    shown = ", ".join(map(repr, out.unseen_examples.get(column, [])))
                    out.flagged.append(
                        f"{column}: {share:.1%} of rows have categories the reference never had"
                        f" ({shown}; tolerance {tol.unseen_share:.1%})"
                    )
        return out
