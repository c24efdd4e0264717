"""What a label-free estimate is, and when it cannot be trusted: the holdout's support.

An estimator (confidence-based for classifiers, loss-based for regressors) is fitted on the
champion's holdout. On inputs far from any holdout row its calibration is an extrapolation, and
no number it gives is worth acting on. ``Support`` keeps the holdout's range of each numerical
feature (widened by ``MARGIN`` of its span) and the values of each categorical one; a window
row is *unsupported* when one of its features lies outside them. When more than
``MAX_UNSUPPORTED`` of a window's rows are, the estimate is declared unreliable and carries no
number: ``Estimate.reliable`` is false and ``reason`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: share of a window's rows outside the holdout's support from which the estimate is unreliable
MAX_UNSUPPORTED = 0.25
#: how far past the holdout's range (as a share of it) a numerical value still counts as inside
MARGIN = 0.05


@dataclass
class Support:
    """The holdout's range of each numerical feature and values of each categorical one."""

    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    values: dict[str, set[object]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: pd.DataFrame, numerical: list[str], categorical: list[str]) -> Support:
        ranges = {}
        for column in numerical:
            if column in rows.columns:
                values = pd.to_numeric(rows[column], errors="coerce").dropna()
                if len(values):
                    low, high = float(values.min()), float(values.max())
                    pad = (high - low) * MARGIN
                    ranges[column] = (low - pad, high + pad)
        seen = {c: set(rows[c].dropna().unique()) for c in categorical if c in rows.columns}
        return cls(ranges, seen)

    def outside(self, frame: pd.DataFrame) -> float:
        """The share of ``frame``'s rows with a feature outside the holdout's support."""
        if len(frame) == 0:
            return 0.0
        out = np.zeros(len(frame), dtype=bool)
        for column, (low, high) in self.ranges.items():
            if column in frame.columns:
                values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
                out |= (values < low) | (values > high)
        for column, seen in self.values.items():
            if column in frame.columns:
                column_values = frame[column]
                out |= (column_values.notna() & ~column_values.isin(seen)).to_numpy()
        return float(out.mean())


@dataclass
class Estimate:
    """A window's label-free estimates with their ``confidence`` band, or why there are none."""

    confidence: float
    unsupported_share: float = 0.0
    values: dict[str, float] = field(default_factory=dict)
    lower: dict[str, float] = field(default_factory=dict)
    upper: dict[str, float] = field(default_factory=dict)

    @property
    def reliable(self) -> bool:
        return self.unsupported_share <= MAX_UNSUPPORTED

    @property
    def reason(self) -> str | None:
        """Why there is no estimate, or None."""
        if self.reliable:
            return None
        return (
            f"unreliable: {self.unsupported_share:.0%} of the window's rows lie outside the"
            f" range of the holdout the estimator was fitted on (more than"
            f" {MAX_UNSUPPORTED:.0%}); the calibration has no support there"
        )
