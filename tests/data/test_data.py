"""Production data: files over a glob, the demo stream, and batch validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reoptd.data import (
    DemoSource,
    FileSource,
    ReplaySource,
    labelled,
    naive_utc,
    open_source,
    validate_batch,
    validate_read,
)
from reoptd.data.demo import (
    DRIFT_AT,
    LABEL_DELAY,
    NUMERICAL,
    ROW_INTERVAL,
    START,
    TARGET,
)
from reoptd.errors import DataError
from reoptd.policy import Policy

T0 = datetime(2026, 2, 1, tzinfo=UTC)


def frame_at(hours: list[int], *, tz: bool = True) -> pd.DataFrame:
    """Rows at T0 + each hour, with the hour as value."""
    ts = pd.DatetimeIndex([T0 + timedelta(hours=h) for h in hours])
    if not tz:
        ts = ts.tz_localize(None)
    return pd.DataFrame({"ts": ts, "x": [float(h) for h in hours]})


def write_parquet(path: Path, hours: list[int], *, tz: bool = True) -> None:
    frame_at(hours, tz=tz).to_parquet(path)


def write_csv(path: Path, hours: list[int]) -> None:
    frame = frame_at(hours)
    frame["ts"] = frame["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.to_csv(path, index=False)


def window_hours(frame: pd.DataFrame) -> list[int]:
    return [int(x) for x in frame["x"]]


# -- FileSource ------------------------------------------------------------------------------


def test_parquet_files_window_sorted(tmp_path: Path) -> None:
    write_parquet(tmp_path / "b.parquet", [5, 1, 9])
    write_parquet(tmp_path / "a.parquet", [7, 3, 2], tz=False)  # naive: taken as UTC
    source = FileSource(str(tmp_path / "*.parquet"), "ts")

    frame = source.read(T0 + timedelta(hours=2), T0 + timedelta(hours=7))

    assert window_hours(frame) == [2, 3, 5]  # start included, end excluded, oldest first
    assert str(frame["ts"].dt.tz) == "UTC"
    assert frame["ts"].is_monotonic_increasing
    assert list(frame.index) == [0, 1, 2]
    everything = source.read(T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert window_hours(everything) == [1, 2, 3, 5, 7, 9]


def test_csv_files_window_sorted(tmp_path: Path) -> None:
    write_csv(tmp_path / "one.csv", [4, 0, 8])
    write_csv(tmp_path / "two.csv", [6, 2])
    source = FileSource(str(tmp_path / "*.csv"), "ts")

    frame = source.read(T0, T0 + timedelta(hours=6))

    assert window_hours(frame) == [0, 2, 4]
    assert pd.api.types.is_datetime64_any_dtype(frame["ts"])
    assert frame["ts"].iloc[0] == pd.Timestamp(T0)


def test_window_accepts_naive_bounds_as_utc(tmp_path: Path) -> None:
    write_parquet(tmp_path / "a.parquet", [0, 1, 2])
    source = FileSource(str(tmp_path / "*.parquet"), "ts")
    naive = T0.replace(tzinfo=None)
    frame = source.read(naive + timedelta(hours=1), naive + timedelta(hours=5))
    assert window_hours(frame) == [1, 2]


def test_new_file_is_picked_up(tmp_path: Path) -> None:
    write_parquet(tmp_path / "batch-1.parquet", [0, 1])
    source = FileSource(str(tmp_path / "batch-*.parquet"), "ts")
    start, end = T0, T0 + timedelta(hours=10)
    assert window_hours(source.read(start, end)) == [0, 1]

    write_parquet(tmp_path / "batch-2.parquet", [3, 2])

    assert window_hours(source.read(start, end)) == [0, 1, 2, 3]


def test_rewritten_file_is_reread(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    write_csv(path, [0])
    source = FileSource(str(path), "ts")
    start, end = T0, T0 + timedelta(hours=10)
    assert window_hours(source.read(start, end)) == [0]
    write_csv(path, [0, 1, 2])
    assert window_hours(source.read(start, end)) == [0, 1, 2]


def test_returned_frame_does_not_alias_the_cache(tmp_path: Path) -> None:
    write_parquet(tmp_path / "a.parquet", [0, 1])
    source = FileSource(str(tmp_path / "*.parquet"), "ts")
    start, end = T0, T0 + timedelta(hours=10)
    first = source.read(start, end)
    first["x"] = -1.0
    assert window_hours(source.read(start, end)) == [0, 1]


def test_no_matching_file_names_pattern(tmp_path: Path) -> None:
    pattern = str(tmp_path / "missing-*.parquet")
    with pytest.raises(DataError) as info:
        FileSource(pattern, "ts").read(T0, T0 + timedelta(hours=1))
    assert pattern in str(info.value)
    assert "no files match" in str(info.value)


@pytest.mark.filterwarnings("ignore:Could not infer format")
def test_unparsable_timestamp_names_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame({"event_time": ["yesterday", "not a date"], "x": [1.0, 2.0]}).to_csv(
        path, index=False
    )
    with pytest.raises(DataError) as info:
        FileSource(str(path), "event_time").read(T0, T0 + timedelta(hours=1))
    assert info.value.column == "event_time"
    assert "'event_time'" in str(info.value)
    assert str(path) in str(info.value)


def test_missing_timestamp_column_names_column(tmp_path: Path) -> None:
    write_parquet(tmp_path / "a.parquet", [0])
    with pytest.raises(DataError) as info:
        FileSource(str(tmp_path / "*.parquet"), "when").read(T0, T0 + timedelta(hours=1))
    assert info.value.column == "when"
    assert "'when'" in str(info.value)


def test_unreadable_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataError) as info:
        FileSource(str(path), "ts").read(T0, T0 + timedelta(hours=1))
    assert str(path) in str(info.value)
    assert "parquet" in str(info.value)


def test_open_source_follows_policy(demo_policy: Policy, tmp_path: Path) -> None:
    assert isinstance(open_source(demo_policy), DemoSource)
    data = demo_policy.model_dump(by_alias=True, exclude_none=True)
    data["data"]["production"] = {"kind": "files", "path": str(tmp_path / "*.csv")}
    source = open_source(Policy.model_validate(data))
    assert isinstance(source, FileSource)
    assert source.pattern == str(tmp_path / "*.csv")
    assert source.timestamp == "ts"


# -- validate_batch --------------------------------------------------------------------------


@pytest.fixture
def batch() -> pd.DataFrame:
    return DemoSource().read(START, START + timedelta(minutes=10))


def test_valid_batch_passes(batch: pd.DataFrame, demo_policy: Policy) -> None:
    out = validate_batch(batch, demo_policy, "demo")
    assert len(out) == len(batch) == 60
    for column in NUMERICAL:
        assert out[column].dtype == np.float64
    assert out["contract"].map(type).eq(str).all()


def test_missing_feature_column(batch: pd.DataFrame, demo_policy: Policy) -> None:
    with pytest.raises(DataError) as info:
        validate_batch(batch.drop(columns=["tenure"]), demo_policy, "batch-7")
    assert info.value.column == "tenure"
    assert "'tenure'" in str(info.value)
    assert "missing" in str(info.value)
    assert str(info.value).startswith("batch-7: ")


def test_several_missing_feature_columns(batch: pd.DataFrame, demo_policy: Policy) -> None:
    with pytest.raises(DataError) as info:
        validate_batch(batch.drop(columns=["tenure", "contract"]), demo_policy, "b")
    assert info.value.column == "tenure"
    assert "also missing: contract" in str(info.value)


def test_numerical_column_holding_text(batch: pd.DataFrame, demo_policy: Policy) -> None:
    broken = batch.copy()
    broken["monthly_charges"] = broken["monthly_charges"].astype(str)
    broken.loc[3, "monthly_charges"] = "n/a"
    with pytest.raises(DataError) as info:
        validate_batch(broken, demo_policy, "b")
    assert info.value.column == "monthly_charges"
    assert "'monthly_charges'" in str(info.value)
    assert "numerical" in str(info.value)


def test_numerical_column_of_booleans(batch: pd.DataFrame, demo_policy: Policy) -> None:
    broken = batch.copy()
    broken["support_calls"] = broken["support_calls"] > 1
    with pytest.raises(DataError) as info:
        validate_batch(broken, demo_policy, "b")
    assert info.value.column == "support_calls"


@pytest.mark.parametrize("column", ["support_calls", "payment_method"])
def test_nan_in_feature(batch: pd.DataFrame, demo_policy: Policy, column: str) -> None:
    broken = batch.copy()
    broken.loc[5, column] = np.nan
    with pytest.raises(DataError) as info:
        validate_batch(broken, demo_policy, "b")
    assert info.value.column == column
    assert f"'{column}'" in str(info.value)
    assert "1 missing value(s)" in str(info.value)


def test_target_column_absent_is_fine(batch: pd.DataFrame, demo_policy: Policy) -> None:
    out = validate_batch(batch.drop(columns=[TARGET]), demo_policy, "b")
    assert TARGET in out.columns
    assert out[TARGET].isna().all()
    assert labelled(out, demo_policy).empty


def test_validate_does_not_modify_input(batch: pd.DataFrame, demo_policy: Policy) -> None:
    # the frame validated is the frame checked afterwards; without its target and with integer
    # and categorical columns, so that adding the target or retyping a column in place shows
    given = batch.drop(columns=[TARGET]).astype({"tenure": "int64", "contract": "category"})
    before = given.copy()
    out = validate_batch(given, demo_policy, "b")
    pd.testing.assert_frame_equal(given, before)
    assert TARGET in out.columns and out["tenure"].dtype == float  # what it did, to its copy


def test_typed_columns_pass_unchanged_into_the_callers_own_copy(
    batch: pd.DataFrame, demo_policy: Policy
) -> None:
    """Float and text columns are kept as they are (no conversion to do), yet the result is
    still the caller's: changing it leaves the input alone. A categorical column holding
    anything but text is converted value by value."""
    typed = batch.astype({c: float for c in NUMERICAL})
    out = validate_batch(typed, demo_policy, "b")
    pd.testing.assert_frame_equal(out, typed)
    out.loc[0, "contract"] = "changed"
    out.loc[0, NUMERICAL[0]] = -1.0
    assert typed.loc[0, "contract"] != "changed" and typed.loc[0, NUMERICAL[0]] != -1.0
    mixed = typed.assign(contract=[7 if i % 2 else "month" for i in range(len(typed))])
    converted = validate_batch(mixed, demo_policy, "b")["contract"]
    assert converted.tolist() == ["7" if i % 2 else "month" for i in range(len(typed))]


# -- DemoSource ------------------------------------------------------------------------------


def test_a_replay_of_a_validated_frame_reads_windows_that_need_no_validation(
    batch: pd.DataFrame, demo_policy: Policy
) -> None:
    """A ``ReplaySource`` given the policy validates its frame once (a bad row fails there);
    its windows, late labels hidden, then pass ``validate_read`` as they are, equal to what
    validating them gives. Without the policy, or for a policy that types batches otherwise,
    each window is validated."""
    ts = demo_policy.timestamp
    history = batch.astype({NUMERICAL[0]: "int64"})  # a column validation retypes
    history[TARGET] = np.arange(len(history)) % 2  # every label known, in time
    label_at = naive_utc(history[ts]) + np.timedelta64(5, "m")
    start, end = START + timedelta(minutes=2), START + timedelta(minutes=8)
    source = ReplaySource(history, ts, TARGET, label_at, demo_policy)
    window = source.read(start, end)
    assert window[TARGET].isna().any() and window[TARGET].notna().any()
    assert validate_read(window, demo_policy, source) is window
    pd.testing.assert_frame_equal(window, validate_batch(window, demo_policy, "w"))
    plain = ReplaySource(history, ts, TARGET, label_at)
    raw = plain.read(start, end)
    assert raw[NUMERICAL[0]].dtype == np.int64
    pd.testing.assert_frame_equal(validate_read(raw, demo_policy, plain), window)
    renamed = demo_policy.model_copy(update={"target": "other"})
    assert "other" in validate_read(window, renamed, source).columns  # validated for it
    broken = history.astype({NUMERICAL[0]: float})
    broken.loc[5, NUMERICAL[0]] = np.nan
    with pytest.raises(DataError) as info:
        ReplaySource(broken, ts, TARGET, label_at, demo_policy)
    assert info.value.column == NUMERICAL[0]
    raw = ReplaySource(broken, ts, TARGET, label_at).read(START, end)
    with pytest.raises(DataError):
        validate_read(raw, demo_policy, plain)


def test_demo_window_bounds() -> None:
    start, end = START, START + timedelta(hours=1)
    frame = DemoSource().read(start, end)
    assert len(frame) == timedelta(hours=1) / ROW_INTERVAL
    assert frame["ts"].iloc[0] == pd.Timestamp(start)
    assert frame["ts"].iloc[-1] == pd.Timestamp(end - ROW_INTERVAL)
    assert frame["ts"].is_monotonic_increasing
    assert frame["request_id"].is_unique


def test_demo_same_window_twice_is_identical() -> None:
    start, end = START + timedelta(minutes=7), START + timedelta(hours=2, seconds=5)
    first = DemoSource(seed=7).read(start, end)
    second = DemoSource(seed=7).read(start, end)
    pd.testing.assert_frame_equal(first, second)
    other_seed = DemoSource(seed=8).read(start, end)
    assert not first["monthly_charges"].equals(other_seed["monthly_charges"])


def test_demo_two_halves_equal_the_whole() -> None:
    start, middle, end = START, START + timedelta(hours=3, seconds=15), START + timedelta(hours=6)
    source = DemoSource(label_delay=timedelta(0))
    whole = source.read(start, end)
    halves = pd.concat([source.read(middle, end), source.read(start, middle)])
    halves = halves.sort_values("ts").reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, halves)


def test_demo_features_do_not_depend_on_read_order() -> None:
    source = DemoSource()
    a = source.read(START + timedelta(hours=1), START + timedelta(hours=2))
    source.read(START + timedelta(days=3), START + timedelta(days=3, hours=1))
    b = source.read(START, START + timedelta(hours=2)).iloc[360:].reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns=[TARGET]), b.drop(columns=[TARGET]))


def test_demo_drifts_at_drift_at() -> None:
    source = DemoSource()
    before = source.read(DRIFT_AT - timedelta(hours=1), DRIFT_AT)
    after = source.read(DRIFT_AT, DRIFT_AT + timedelta(hours=1))
    assert before["ts"].max() < pd.Timestamp(DRIFT_AT) <= after["ts"].min()
    assert after["monthly_charges"].mean() > before["monthly_charges"].mean() + 10
    assert after["support_calls"].mean() > before["support_calls"].mean()


def test_demo_labels_arrive_after_label_delay() -> None:
    end = START + timedelta(hours=2)
    frame = DemoSource().read(START, end)
    fresh = frame["ts"] > pd.Timestamp(end - LABEL_DELAY)
    # the row exactly LABEL_DELAY old has its label; the newer ones do not
    assert fresh.sum() == LABEL_DELAY / ROW_INTERVAL - 1
    assert frame.loc[fresh, TARGET].isna().all()
    assert frame.loc[~fresh, TARGET].notna().all()
    assert set(frame.loc[~fresh, TARGET].unique()) <= {0.0, 1.0}
    # a later read sees the labels that have arrived since
    later = DemoSource().read(START, end + LABEL_DELAY)
    assert later.loc[fresh[fresh].index, TARGET].notna().all()


def test_demo_empty_and_pre_epoch_windows() -> None:
    source = DemoSource()
    empty = source.read(START, START)
    assert empty.empty
    assert list(empty.columns) == list(source.read(START, START + ROW_INTERVAL).columns)
    assert source.read(START - timedelta(days=400), START - timedelta(days=300)).empty
