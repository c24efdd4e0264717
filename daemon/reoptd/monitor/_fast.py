"""Faster forms of Evidently's per-column work that give the same numbers, for the lean path.

Who calls it: ``monitor._drift`` (``DriftDetector``), once per column and window.

* ``wasserstein_norm``: Evidently's ``wasserstein`` test is ``scipy.stats.wasserstein_distance``
  divided by the reference's standard deviation. SciPy argsorts both sides, merge-sorts their
  concatenation and binary-searches every merged value in both sorted sides (2 searches of
  n + m keys). Given the reference sorted once per champion and the window sorted once, the
  same merged array and the same CDF counts come from one linear merge and a cumulative sum;
  the terms are SciPy's, summed without BLAS, so the distance is SciPy's to rounding.
* ``as_categories``: the categorical side of a check as Evidently's counting tests read it
  (strings, no missing values) from one hashing pass over the window (``pd.factorize``) instead
  of a null scan, two string-type scans, a string conversion and a second hashing pass; the
  counts per category, and so every count-based score, are the same.

Both release the GIL in numpy for the numerical work, so the columns of a wide window can be
spread over threads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def wasserstein_distance_sorted(reference: np.ndarray, current: np.ndarray) -> float:
    """``scipy.stats.wasserstein_distance(reference, current)`` of two *sorted* float arrays."""
    n, m = len(reference), len(current)
    both = np.concatenate((reference, current))
    # a stable sort of two sorted runs is one merge (timsort finds the runs); equal values keep
    # the reference first, as SciPy's mergesort of the concatenation does
    order = both.argsort(kind="stable")
    merged = both[order]
    deltas = np.diff(merged)
    # CDF counts up to each merged position; where the next value is equal (delta 0) the count
    # differs from SciPy's (it counts the whole run of ties) but the term is 0 either way
    v_count = np.cumsum((order[:-1] >= n).astype(np.int64))
    u_count = np.arange(1, n + m, dtype=np.int64) - v_count
    u_cdf = u_count / n
    v_cdf = v_count / m
    # numpy's pairwise sum, not SciPy's np.vecdot: that one is a BLAS dot, which wakes a pool
    # of BLAS threads per column (on a column pool thread, more threads than cores); the two
    # sums of the same terms agree to rounding (tests: 1e-12)
    return float(np.add.reduce(np.abs(u_cdf - v_cdf) * deltas))


def wasserstein_norm(
    reference_sorted: np.ndarray, reference_std: float, current: np.ndarray
) -> float:
    """Evidently's normed Wasserstein distance (``wasserstein_distance_norm``): the distance
    over the reference's standard deviation, at least 0.001. ``current`` need not be sorted;
    ``reference_std`` is ``np.std`` of the reference as given (not sorted: the same float)."""
    norm = max(float(reference_std), 0.001)
    return wasserstein_distance_sorted(reference_sorted, np.sort(current)) / norm


def as_categories(values: pd.Series) -> pd.Series:
    """``values`` without missing ones, each as its ``str`` (what ``typed`` makes of a
    categorical column), as a pandas category Series."""
    codes, uniques = pd.factorize(values.to_numpy(), use_na_sentinel=True)
    names = np.asarray(uniques, dtype=object)
    if not all(type(u) is str for u in names):
        if values.dtype == object:
            # mixed Python objects: factorize counts True, 1 and 1.0 as one value, their
            # strings differ; convert first, as ``typed`` did
            present = values[values.notna()].astype(str)
            codes, uniques = pd.factorize(present.to_numpy())
            names = np.asarray(uniques, dtype=object)
        else:  # one numpy type: equal values have equal strings; 1.0 and 1.5 stay apart
            names = np.array([str(u) for u in names], dtype=object)
            remap, names = pd.factorize(names)
            codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
    if (codes < 0).any():
        codes = codes[codes >= 0]
    categorical = pd.Categorical.from_codes(codes, categories=pd.Index(names))  # type: ignore[arg-type]
    return pd.Series(categorical, copy=False)
