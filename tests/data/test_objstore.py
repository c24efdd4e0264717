"""Production rows and late labels on object storage, against a real S3 server (moto) on
loopback: day partitions pruned by the window, objects cached by ETag, errors naming the URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import s3fs

from reoptd.data import open_source
from reoptd.errors import DataError
from reoptd.policy import Policy

pytestmark = pytest.mark.external

DAY = datetime(2026, 5, 1, tzinfo=UTC)


def _policy(bucket: str, labels: bool = False) -> Policy:
    data: dict[str, Any] = {
        "production": {"kind": "files", "path": f"s3://{bucket}/pred/date=*/*.parquet"}
    }
    if labels:
        data["labels"] = {
            "kind": "files",
            "path": f"s3://{bucket}/labels/date=*/*.parquet",
            "arrived": "labelled_at",
        }
    return Policy.model_validate(
        {
            "version": 1,
            "model": "objects",
            "task": "classification",
            "target": "y",
            "id": "rid",
            "timestamp": "ts",
            "features": {"numerical": ["x"]},
            "data": data,
            "train": {"estimator": "sklearn.linear_model.LogisticRegression"},
        }
    )


def _put(fs: Any, key: str, frame: pd.DataFrame) -> None:
    with fs.open(key, "wb") as out:
        frame.to_parquet(out, index=False)


def _day_rows(day: int) -> pd.DataFrame:
    ts = [DAY + timedelta(days=day, hours=h) for h in range(0, 24, 6)]
    return pd.DataFrame({"rid": [day * 100 + i for i in range(4)], "ts": ts, "x": [float(day)] * 4})


class Spy:
    """Counts what the S3 client opens and lists (wrapping s3fs's own methods)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened: list[str] = []
        self.listed: list[str] = []
        open_, lsdir = s3fs.S3FileSystem._open, s3fs.S3FileSystem._lsdir

        def counting_open(fs: Any, path: str, *args: Any, **kwargs: Any) -> Any:
            self.opened.append(path)
            return open_(fs, path, *args, **kwargs)

        async def counting_lsdir(fs: Any, path: str, *args: Any, **kwargs: Any) -> Any:
            self.listed.append(path + "/" + kwargs.get("prefix", ""))
            return await lsdir(fs, path, *args, **kwargs)

        monkeypatch.setattr(s3fs.S3FileSystem, "_open", counting_open)
        monkeypatch.setattr(s3fs.S3FileSystem, "_lsdir", counting_lsdir)

    def reset(self) -> None:
        self.opened.clear()
        self.listed.clear()


def test_a_window_lists_and_reads_only_its_day_partitions(
    s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_env
    fs = s3fs.S3FileSystem()
    for day in range(5):
        _put(
            fs,
            f"{bucket}/pred/date={(DAY + timedelta(days=day)).date()}/part-0.parquet",
            _day_rows(day),
        )
    source = open_source(_policy(bucket))
    assert source.name == f"objects s3://{bucket}/pred/date=*/*.parquet"
    spy = Spy(monkeypatch)

    start, end = DAY + timedelta(days=1, hours=12), DAY + timedelta(days=3, hours=12)
    window = source.read(start, end)
    assert list(window.rid) == [102, 103, 200, 201, 202, 203, 300, 301]
    assert window.ts.is_monotonic_increasing and str(window.ts.dt.tz) == "UTC"
    read = sorted(p.split("/pred/")[1] for p in spy.opened)
    assert read == [f"date=2026-05-0{d}/part-0.parquet" for d in (2, 3, 4)]
    # listed: the three partitions' prefixes, never the partition level or other days
    assert all("date=2026-05-0" in p for p in spy.listed), spy.listed
    assert {p.split("date=")[1][:10] for p in spy.listed} == {
        "2026-05-02",
        "2026-05-03",
        "2026-05-04",
    }

    # Unchanged objects are not fetched again; a rewritten one is (new ETag).
    spy.reset()
    assert len(source.read(start, end)) == 8
    assert spy.opened == []
    _put(
        fs,
        f"{bucket}/pred/date=2026-05-03/part-0.parquet",
        _day_rows(2).assign(rid=range(900, 904)),
    )
    spy.reset()
    assert 900 in set(source.read(start, end).rid)
    assert [p.split("/pred/")[1] for p in spy.opened] == ["date=2026-05-03/part-0.parquet"]

    # A day without a partition is an empty window, not an error.
    assert source.read(DAY + timedelta(days=30), DAY + timedelta(days=31)).empty


def test_labels_read_partitions_up_to_the_read_and_join(
    s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_env
    fs = s3fs.S3FileSystem()
    for day in range(3):
        rows = _day_rows(day)
        _put(fs, f"{bucket}/pred/date={(DAY + timedelta(days=day)).date()}/p.parquet", rows)
        labels = rows[["rid"]].assign(y=day % 2, labelled_at=DAY + timedelta(days=day, hours=23))
        _put(fs, f"{bucket}/labels/date={(DAY + timedelta(days=day)).date()}/l.parquet", labels)
    source = open_source(_policy(bucket, labels=True))
    spy = Spy(monkeypatch)
    frame = source.read(DAY + timedelta(days=1), DAY + timedelta(days=2))
    assert list(frame.y) == [1.0] * 4  # day 1's labels arrived at 23:00, before the end
    labels_read = sorted(p.split("/labels/")[1][:15] for p in spy.opened if "/labels/" in p)
    assert labels_read == ["date=2026-05-01", "date=2026-05-02"]  # not day 3's partition


def test_a_missing_bucket_is_a_data_error_naming_the_url(s3_env: str) -> None:
    source = open_source(_policy("no-such-bucket-" + s3_env))
    with pytest.raises(DataError, match=r"s3://no-such-bucket-.*bucket does not exist"):
        source.read(DAY, DAY + timedelta(hours=2))


def test_missing_credentials_are_a_data_error_saying_where_they_come_from(
    s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    s3fs.S3FileSystem.clear_instance_cache()
    source = open_source(_policy(s3_env))
    with pytest.raises(DataError) as error:
        source.read(DAY, DAY + timedelta(hours=2))
    assert f"s3://{s3_env}/pred/date=*/*.parquet" in str(error.value)
    assert "Unable to locate credentials" in str(error.value)
    assert "AWS_ACCESS_KEY_ID" in str(error.value)


def test_an_unreadable_object_names_the_object(s3_env: str) -> None:
    fs = s3fs.S3FileSystem()
    fs.pipe(f"{s3_env}/pred/date=2026-05-01/bad.parquet", b"not parquet")
    source = open_source(_policy(s3_env))
    with pytest.raises(
        DataError, match=rf"s3://{s3_env}/pred/date=2026-05-01/bad.parquet: cannot read"
    ):
        source.read(DAY, DAY + timedelta(hours=2))
