"""Files that are not files, files that vanish, inf in a numerical column, labels of two kinds."""

from __future__ import annotations

import glob
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reoptd.data import FileSource, LabelFiles, validate_batch
from reoptd.data import _files as files_module
from reoptd.errors import DataError
from reoptd.policy import Policy

T0 = datetime(2026, 2, 1, tzinfo=UTC)
HOURS = (T0, T0 + timedelta(hours=10))


def _write(path: Path, hours: list[int]) -> None:
    ts = [T0 + timedelta(hours=h) for h in hours]
    frame = pd.DataFrame({"ts": [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in ts], "x": hours})
    frame.to_csv(path, index=False)


def test_a_fifo_and_a_directory_in_the_glob_are_skipped_never_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(tmp_path / "a.csv", [0, 1])
    os.mkfifo(tmp_path / "b.csv")  # opening it for reading would block until a writer came
    (tmp_path / "c.csv").mkdir()
    source = FileSource(str(tmp_path / "*.csv"), "ts")
    with caplog.at_level(logging.WARNING, "reoptd.data"):
        frame = source.read(*HOURS)
    assert list(frame["x"]) == [0, 1]
    assert "b.csv: skipped: not a regular file" in caplog.text
    assert "c.csv: skipped: not a regular file" in caplog.text


def test_a_glob_of_only_a_fifo_is_a_data_error_not_a_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "only.csv")
    with pytest.raises(DataError, match=r"no files match .*regular file"):
        FileSource(str(tmp_path / "*.csv"), "ts").read(*HOURS)


def test_a_file_deleted_between_glob_and_read_is_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _write(tmp_path / "a.csv", [0])
    _write(tmp_path / "b.csv", [1])
    listing = glob.glob

    def racing(pattern: str) -> list[str]:  # b.csv is listed, then deleted before the read
        found = listing(pattern)
        os.remove(tmp_path / "b.csv")
        return [*found, str(tmp_path / "gone.csv")]

    monkeypatch.setattr(files_module.glob, "glob", racing)
    with caplog.at_level(logging.WARNING, "reoptd.data"):
        frame = FileSource(str(tmp_path / "*.csv"), "ts").read(*HOURS)
    assert list(frame["x"]) == [0]
    assert "b.csv: skipped: the file vanished" in caplog.text
    assert "gone.csv: skipped: the file vanished" in caplog.text


def test_inf_in_a_numerical_column_is_a_data_error_naming_the_column(
    demo_policy: Policy,
) -> None:
    from reoptd.data import DemoSource
    from reoptd.data.demo import START

    frame = DemoSource().read(START, START + timedelta(hours=1))
    column = demo_policy.features.numerical[0]
    frame.loc[frame.index[:3], column] = [np.inf, -np.inf, np.inf]
    with pytest.raises(DataError) as info:
        validate_batch(frame, demo_policy, "batch.csv")
    assert info.value.column == column
    assert f"{column!r} has 3 non-finite value(s)" in str(info.value)


def _labels(path: Path, values: list[object]) -> None:
    frame = pd.DataFrame({"request_id": [f"{path.stem}-{i}" for i in range(len(values))]})
    frame["churned"] = pd.Series(values, dtype=object)
    frame.to_parquet(path)


def test_label_files_of_two_kinds_are_refused_naming_file_row_and_column(
    demo_policy: Policy, tmp_path: Path
) -> None:
    policy = demo_policy.model_copy(update={"id": "request_id"})
    _labels(tmp_path / "a.parquet", [0, 1, 1])
    _labels(tmp_path / "b.parquet", ["0", "1"])
    feed = LabelFiles(str(tmp_path / "*.parquet"), policy)
    with pytest.raises(DataError) as info:
        feed.labels(T0)
    message = str(info.value)
    assert "b.parquet: row 0: label column 'churned': '0' is a string" in message
    assert "a.parquet are numbers" in message and info.value.column == "churned"
    os.remove(tmp_path / "b.parquet")
    assert len(feed.labels(T0)) == 3


def test_an_infinite_label_is_a_data_error_naming_the_target(demo_policy: Policy) -> None:
    from reoptd.data import DemoSource
    from reoptd.data.demo import START

    frame = DemoSource().read(START, START + timedelta(hours=1))
    frame[demo_policy.target] = frame[demo_policy.target].astype(float)
    frame.loc[frame.index[0], demo_policy.target] = -np.inf
    with pytest.raises(DataError, match="target column 'churned' has 1 non-finite") as info:
        validate_batch(frame, demo_policy, "labels.csv")
    assert info.value.column == "churned"
