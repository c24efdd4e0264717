"""The lean path's faster forms give Evidently's and SciPy's numbers, serially and in parallel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reoptd.monitor import DriftDetector, feature_drift_report
from reoptd.monitor import _drift as drift
from reoptd.monitor._fast import as_categories, wasserstein_distance_sorted
from reoptd.policy import Policy


def _sides(kind: str, n: int, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if kind == "ties":  # few distinct values: long runs of equal values on both sides
        return rng.integers(0, 7, n).astype(float), rng.integers(2, 9, m).astype(float)
    if kind == "constant":
        return np.full(n, 3.0), np.full(m, 3.0)
    if kind == "disjoint":
        return rng.normal(0, 1, n), rng.normal(50, 1, m)
    return rng.normal(0, 1, n), rng.normal(0.2, 1.3, m)


@pytest.mark.parametrize("kind", ["normal", "ties", "constant", "disjoint"])
@pytest.mark.parametrize(("n", "m"), [(1, 1), (7, 3), (1000, 2500), (40_000, 30_000)])
def test_wasserstein_from_sorted_sides_is_scipys_number(kind: str, n: int, m: int) -> None:
    rng = np.random.default_rng(n * 31 + m)
    reference, current = _sides(kind, n, m, rng)
    expected = stats.wasserstein_distance(reference, current)
    got = wasserstein_distance_sorted(np.sort(reference), np.sort(current))
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)  # the same terms, summed


def test_categories_count_as_the_strings_evidently_compares() -> None:
    values = pd.Series(["a", None, "b", 1, "1", np.nan, 2.5, "a", True, "True"], dtype=object)
    expected = values[values.notna()].astype(str).value_counts().to_dict()
    got = as_categories(values)
    assert got.value_counts().to_dict() == expected
    assert set(got.cat.categories) == set(expected)  # only the values present
    numbers = pd.Series([1.0, np.nan, 2.0, 1.0, 0.5])
    expected = numbers.dropna().astype(str).value_counts().to_dict()
    assert as_categories(numbers).value_counts().to_dict() == expected


def _policy(numerical: list[str], categorical: list[str]) -> Policy:
    return Policy.model_validate(
        {
            "version": 1,
            "model": "wide",
            "task": "classification",
            "target": "y",
            "features": {"numerical": numerical, "categorical": categorical},
            "data": {"production": {"kind": "files", "path": "unused"}},
            "train": {"estimator": "sklearn.linear_model.LogisticRegression"},
        }
    )


def _wide(rng: np.random.Generator, rows: int, shift: float) -> pd.DataFrame:
    data: dict[str, object] = {}
    for i in range(12):
        if i % 3 == 2:
            p = np.array([0.5, 0.3, 0.2])
            data[f"c{i}"] = rng.choice(["a", "b", "c"], rows, p=np.roll(p, int(shift)))
        elif i % 3 == 1:
            data[f"x{i}"] = rng.poisson(3 + shift * i, rows).astype(float)  # ties
        else:
            data[f"x{i}"] = rng.normal(shift * (i % 2), 1, rows)
    frame = pd.DataFrame(data)
    frame.loc[::97, "x0"] = np.nan  # missing values on one side are left out of the test
    return frame


def test_parallel_columns_give_the_serial_verdicts_and_evidently_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(5)
    reference, current = _wide(rng, 3000, 0.0), _wide(rng, 2000, 1.0)
    numerical = [c for c in reference.columns if c.startswith("x")]
    categorical = [c for c in reference.columns if c.startswith("c")]
    policy = _policy(numerical, categorical)
    serial = DriftDetector(policy, reference).check(current)
    monkeypatch.setattr(drift, "PARALLEL_CELLS", 1)  # this small frame now goes to the pool
    calls: list[str] = []
    pool = drift.column_pool()
    original = pool.map

    def spy(fn, *iterables, **kwargs):  # type: ignore[no-untyped-def]
        calls.append("map")
        return original(fn, *iterables, **kwargs)

    monkeypatch.setattr(pool, "map", spy)
    parallel = DriftDetector(policy, reference).check(current)
    assert calls == ["map", "map"]  # the reference side and the check both went to the pool
    assert parallel == serial
    report = feature_drift_report(policy, reference, current)
    assert any(f.drifted for f in report.values()) and not all(f.drifted for f in report.values())
    for column, expected in report.items():
        got = parallel[column]
        assert got.drifted == expected.drifted, column
        assert got.score == pytest.approx(expected.score, rel=1e-9, abs=1e-12), column
