"""An estimator's own error where a window's rows are: measured out of fold, by bins (#19).

Both label-free estimates (the classifiers' calibrated confidence, the regressors' loss
models) are means of per-row predictions. How far off those predictions are depends on where
the rows are: fitted on 4 folds of the holdout and predicting the fifth, the holdout's rows are
cut into ``BINS`` bins of equal count by the prediction, and each bin's error is its gap (mean
observed - mean predicted), less the part its own sampling noise explains (absolute, or relative
to the mean prediction). A window's error is the root mean square of its rows' bins' errors: an
upper bound of the error of its mix of bins, whatever the signs of the bins' errors
(Cauchy-Schwarz), so a window that moved to the bins the estimator gets wrong gets a wider band
than the holdout's own mix. Where the bins' errors have both signs and every window mixes many
bins (a classifier's confidence: over-confident at the top, under- at the bottom), that bound is
far too wide; ``of_mix`` is the error of the window's own mix instead: the root of its rows'
bins' signed gaps averaged and squared, plus that average's own variance (the holdout's bins
are samples: a gap of zero measured on 500 rows is not a gap of zero, and an estimator checked
on the holdout and found right there, e.g. a classifier's scores left uncalibrated, is still
only as right as a holdout of this size can tell).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

#: folds of the out-of-fold fit, and bins of the prediction
FOLDS = 5
BINS = 10


@dataclass(frozen=True)
class BinnedError:
    """``edges`` cut predictions into bins of the holdout's rows; ``squared`` is each bin's
    squared error (absolute, or relative to its mean prediction: as measured); ``gaps`` and
    ``noise`` its signed gap and that gap's standard error (absolute, or relative)."""

    edges: np.ndarray
    squared: np.ndarray
    gaps: np.ndarray = field(default_factory=lambda: np.empty(0))
    noise: np.ndarray = field(default_factory=lambda: np.empty(0))

    def of(self, predicted: np.ndarray) -> float:
        """The error of the mean prediction of rows predicted so: the root mean square of their
        bins' errors."""
        if len(self.squared) == 0 or len(predicted) == 0:
            return 0.0
        bins = np.searchsorted(self.edges, predicted, side="right")
        return float(np.sqrt(self.squared[bins].mean()))

    def of_mix(self, predicted: np.ndarray) -> float:
        """The error of the mean prediction of rows predicted so, from their mix of bins: the
        root of the squared mean of their bins' signed gaps plus its variance."""
        if len(self.gaps) == 0 or len(predicted) == 0:
            return 0.0
        share = np.bincount(
            np.searchsorted(self.edges, predicted, side="right"), minlength=len(self.gaps)
        ) / len(predicted)
        return float(np.sqrt((share @ self.gaps) ** 2 + (share**2) @ self.noise**2))

    @classmethod
    def measure(cls, predicted: np.ndarray, observed: np.ndarray, *, relative: bool) -> BinnedError:
        """From out-of-fold ``predicted`` values of the holdout's rows and their ``observed``
        ones (a loss, or 1 where the prediction was right)."""
        predicted = np.asarray(predicted, dtype=float)
        observed = np.asarray(observed, dtype=float)
        parts = [p for p in np.array_split(np.argsort(predicted), BINS) if len(p)]
        squared, gaps, noises = [], [], []
        for part in parts:
            guess = predicted[part].mean()
            noise = observed[part].std() / np.sqrt(len(part))
            gap = observed[part].mean() - guess
            error = max(gap**2 - noise**2, 0.0)
            scale = (1 / guess if guess > 0 else 0.0) if relative else 1.0
            squared.append(error * scale**2)
            gaps.append(gap * scale)
            noises.append(noise * scale)
        # a bin's upper edge is the midpoint between its highest prediction and the next bin's
        # lowest; the first and last bins reach out to anything below and above
        edges = [(predicted[a].max() + predicted[b].min()) / 2 for a, b in pairwise(parts)]
        return cls(*(np.asarray(v, dtype=float) for v in (edges, squared, gaps, noises)))


NONE = BinnedError(np.empty(0), np.empty(0))
