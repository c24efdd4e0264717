"""Reference statistics stored with a version: the checks read them instead of the reference rows
and give the same verdicts as from the rows, and as Evidently's Report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reoptd.cycle.reference import SORTED, pack, unpack, unpack_stats
from reoptd.monitor import DriftDetector, ReferenceStats, feature_drift_report
from reoptd.policy import Policy


def _frame(rng: np.random.Generator, rows: int, shift: float) -> pd.DataFrame:
    p = np.array([0.5, 0.3, 0.15, 0.05])
    frame = pd.DataFrame(
        {
            "x0": rng.normal(shift, 1, rows),
            "x1": rng.gamma(2.0, 10.0 + 5 * shift, rows).round(),  # many ties
            "x2": rng.normal(0, 1, rows),
            "few": rng.integers(0, 3, rows).astype(float),  # Evidently's choice reads the window
            "c0": rng.choice(["a", "b", "c", "d"], rows, p=np.roll(p, int(shift))),
            "c1": rng.choice(["u", "v", "w", "x", "y", "z", "q"], rows),
            "y": rng.integers(0, 2, rows),
        }
    )
    frame.loc[::37, "x0"] = np.nan  # missing values are left out on either side
    return frame


def _policy(drift: dict[str, object] | None = None) -> Policy:
    return Policy.model_validate(
        {
            "version": 1,
            "model": "stats",
            "task": "classification",
            "target": "y",
            "features": {"numerical": ["x0", "x1", "x2", "few"], "categorical": ["c0", "c1"]},
            "data": {"production": {"kind": "files", "path": "unused"}},
            "monitor": {"drift": drift or {}},
            "train": {"estimator": "sklearn.linear_model.LogisticRegression"},
        }
    )


@pytest.mark.parametrize(
    ("drift", "rows"),
    [
        (None, 3000),  # Evidently's choice: Wasserstein and Jensen-Shannon
        (None, 800),  # small reference: K-S; categorical columns fall back to the rows
        ({"method": "ks", "cat_method": "psi"}, 3000),
        ({"method": "anderson", "cat_method": "chisquare"}, 3000),  # anderson reads the rows
    ],
)
def test_stored_statistics_give_the_rows_verdicts_and_evidently_s(
    drift: dict[str, object] | None, rows: int
) -> None:
    rng = np.random.default_rng(rows)
    policy = _policy(drift)
    train, holdout, current = _frame(rng, rows, 0.0), _frame(rng, 500, 0.0), _frame(rng, 2000, 1)
    data = pack(policy, train, holdout)
    reference, _ = unpack(data)
    assert not [c for c in reference.columns if c.startswith(SORTED)]
    stats = unpack_stats(data)
    assert stats is not None
    assert set(stats.numerical) == {"x0", "x1", "x2", "few"}
    assert set(stats.categorical) == {"c0", "c1"}

    from_rows = DriftDetector(policy, reference).check(current)
    from_stats = DriftDetector(policy, reference, stats).check(current)
    assert from_stats == from_rows
    report = feature_drift_report(policy, reference, current)
    assert any(f.drifted for f in report.values()) and not all(f.drifted for f in report.values())
    for column, expected in report.items():
        got = from_stats[column]
        assert got.drifted == expected.drifted, column
        assert got.score == pytest.approx(expected.score, rel=1e-9, abs=1e-12), column


def test_covered_columns_never_read_the_reference_rows() -> None:
    """With the statistics, the columns they cover need no reference rows at all: only the
    columns whose test reads the rows (few distinct values here) are taken from the frame."""
    rng = np.random.default_rng(3)
    policy = _policy()
    train, current = _frame(rng, 3000, 0.0), _frame(rng, 2000, 1.0)
    data = pack(policy, train, train.head(0))
    reference, _ = unpack(data)
    stats = unpack_stats(data)
    assert stats is not None
    read: list[str] = []
    loader = stats.sorted_values
    assert loader is not None

    def counted(column: str) -> np.ndarray:
        read.append(column)
        return loader(column)

    stats.sorted_values = counted
    only_few = reference[["few"]]  # every other column gone from the reference frame
    got = DriftDetector(policy, only_few, stats).check(current)
    assert got == DriftDetector(policy, reference).check(current)
    assert sorted(read) == ["x0", "x1", "x2"]  # "few" has 3 distinct values: from the rows
    assert all(f.tested for f in got.values())


def test_statistics_are_of_the_cleaned_reference() -> None:
    rng = np.random.default_rng(4)
    policy = _policy()
    train = _frame(rng, 2000, 0.0)
    stats, ordered = ReferenceStats.of(policy, train)
    x0 = train["x0"].dropna().to_numpy()
    assert stats.numerical["x0"] == (len(x0), float(np.std(x0)), None)
    assert stats.numerical["few"][2] == [0.0, 1.0, 2.0]
    assert np.array_equal(ordered["x0"], np.sort(x0))
    categories, counts = stats.categorical["c0"]
    assert dict(zip(categories, counts, strict=True)) == train["c0"].value_counts().to_dict()
    again = ReferenceStats.from_dict(stats.to_dict(), ordered.__getitem__)
    assert again.numerical == stats.numerical and again.categorical == stats.categorical


def test_a_sampled_reference_ignores_the_statistics_of_all_rows() -> None:
    rng = np.random.default_rng(5)
    policy = _policy({"sample_rows": 1000})
    train, current = _frame(rng, 3000, 0.0), _frame(rng, 2000, 1.0)
    data = pack(policy, train, train.head(0))
    reference, _ = unpack(data)
    got = DriftDetector(policy, reference, unpack_stats(data)).check(current)
    assert got == DriftDetector(policy, reference).check(current)


def test_references_packed_before_statistics_have_none() -> None:
    import io

    frame = _frame(np.random.default_rng(6), 100, 0.0)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    assert unpack_stats(buffer.getvalue()) is None
    reference, calibration = unpack(buffer.getvalue())
    assert list(reference.columns) == list(frame.columns) and calibration is None


def test_a_window_streamed_in_column_chunks_gives_the_same_verdicts(tmp_path) -> None:
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    policy = _policy()
    reference, current = _frame(rng, 3000, 0.0), _frame(rng, 2000, 1.0)
    path = tmp_path / "window.parquet"
    current.to_parquet(path, index=False)
    reads: list[list[str]] = []

    def read(columns: list[str]) -> pd.DataFrame:
        reads.append(columns)
        return pq.read_table(path, columns=columns).to_pandas()

    detector = DriftDetector(policy, reference)
    streamed = detector.check_chunks(read, chunk=4)
    assert reads == [["x0", "x1", "x2", "few"], ["c0", "c1"]]
    assert streamed == detector.check(current)
    assert list(streamed) == policy.features.monitored
