"""Checking a batch against the policy before any statistic is computed on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pandas.api.types import infer_dtype

from reoptd.errors import DataError
from reoptd.policy import Policy

FLOAT = np.dtype("float64")
OBJECT = np.dtype("object")


def validate_batch(frame: pd.DataFrame, policy: Policy, where: str) -> pd.DataFrame:
    """Return ``frame`` with typed feature columns, or raise ``DataError`` naming the column.

    A missing feature column, a numerical column holding text or inf, or a NaN in any feature
    fails the batch: a drift verdict on silently coerced data would be worse than none. The target
    column may be absent or NaN (labels arrive late).
    """
    missing = [c for c in policy.features.all if c not in frame.columns]
    if missing:
        raise DataError(
            f"{where}: feature column {missing[0]!r} is missing"
            + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""),
            column=missing[0],
        )
    frame = frame.copy()
    for column in policy.features.numerical:
        values = frame[column]
        if ptypes.is_bool_dtype(values) or not ptypes.is_numeric_dtype(values):
            sample = values[~values.isna()].head(1).tolist()
            raise DataError(
                f"{where}: column {column!r} should be numerical but has dtype {values.dtype}"
                + (f" (e.g. {sample[0]!r})" if sample else ""),
                column=column,
            )
        if values.dtype != FLOAT:  # (a float column is left as it is: no copy, no setitem)
            frame[column] = values = values.astype(float)
        infinite = int(np.isinf(values.to_numpy()).sum())
        if infinite:
            raise DataError(
                f"{where}: column {column!r} has {infinite} non-finite value(s) (inf, -inf)"
                f" in {len(frame)} rows",
                column=column,
            )
    for column in policy.features.all:
        nans = int(missing_mask(frame[column]).sum())
        if nans:
            raise DataError(
                f"{where}: column {column!r} has {nans} missing value(s) (NaN)"
                f" in {len(frame)} rows",
                column=column,
            )
    for column in policy.features.categorical:
        if not _all_text(frame[column]):  # text already: astype(str) would change nothing
            frame[column] = frame[column].astype(str)
    if policy.target in frame.columns:
        target = frame[policy.target]
        if policy.task == "regression" and not ptypes.is_numeric_dtype(target):
            raise DataError(
                f"{where}: target column {policy.target!r} should be numerical for regression",
                column=policy.target,
            )
        if ptypes.is_numeric_dtype(target) and not ptypes.is_bool_dtype(target):
            infinite = int(np.isinf(target.to_numpy(dtype=float)).sum())
            if infinite:
                raise DataError(
                    f"{where}: target column {policy.target!r} has {infinite} non-finite"
                    f" label(s) (inf, -inf) in {len(frame)} rows",
                    column=policy.target,
                )
    else:
        frame[policy.target] = float("nan")
    return frame


def validation_key(policy: Policy) -> str:
    """What ``validate_batch`` checks a batch against: the task, the target and the features'
    kinds. Two policies with one key accept and type the same batches."""
    features = policy.features
    return repr((policy.task, policy.target, features.numerical, features.categorical))


def validate_read(frame: pd.DataFrame, policy: Policy, source: object) -> pd.DataFrame:
    """``validate_batch`` of rows read from ``source`` (naming it in errors). A source that
    holds rows validated for this policy already (``validated``: their ``validation_key``, as
    a ``ReplaySource`` given the policy has) returns them as they are: validation is row by
    row, so any rows of a validated batch pass it unchanged, and a backtest re-reads every
    window several times."""
    if getattr(source, "validated", None) == validation_key(policy):
        return frame
    return validate_batch(frame, policy, getattr(source, "name", "source"))


def missing_mask(values: pd.Series) -> np.ndarray:
    """Where ``values`` is missing, as ``Series.isna`` says (on the array: cheaper)."""
    if isinstance(values.dtype, np.dtype):
        found: np.ndarray = pd.isna(values.to_numpy())
        return found
    return values.isna().to_numpy()


def _all_text(values: pd.Series) -> bool:
    """True when ``values`` is an object column of ``str`` values only."""
    return values.dtype == OBJECT and infer_dtype(values.to_numpy(), skipna=False) == "string"


def labelled(frame: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """The rows of ``frame`` whose label has arrived."""
    return frame[frame[policy.target].notna()]
