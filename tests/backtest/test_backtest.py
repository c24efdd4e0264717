"""Backtests replay a history through the daemon's own loop and score it prequentially."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reoptd.backtest import BacktestError, Span, parse_span, plot_report, run_backtest
from reoptd.backtest._history import cut_steps, label_times, load_history
from reoptd.data import ReplaySource, demo
from reoptd.policy import Policy
from reoptd.settings import DEMO_POLICY

REOPTD = str(Path(sys.executable).parent / "reoptd")
TOP = {"policy", "metric", "rows_scored", "steps", "seconds", "served", "baselines", "timeline"}
PART = {"value", "retrains", "promotions", "optimize_seconds"}
ENTRY = {
    "step",
    "start",
    "end",
    "champion_version",
    "served",
    "static",
    "periodic",
    "drift_share",
    "decision",
}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve hours of the demo stream, all labels present; drift three hours after warm-up."""
    source = demo.DemoSource(label_delay=timedelta(0))
    frame = source.read(demo.START - timedelta(hours=3), demo.START + timedelta(hours=9))
    path = tmp_path_factory.mktemp("history") / "history.parquet"
    frame.to_parquet(path, index=False)
    return path


def _demo_backtest(history: Path, **options: Any) -> dict:
    """The demo policy backtested on ``history``: 3h warm-up, 30m steps, labels 30m late."""
    from reoptd.policy import load_policy

    return run_backtest(
        load_policy(DEMO_POLICY),
        history,
        warmup=parse_span("3h", "--warmup"),
        step=parse_span("30m", "--step"),
        label_delay=parse_span("30m", "--label-delay"),
        progress=False,
        **options,
    )


@pytest.fixture(scope="module")
def report(history: Path) -> dict:
    return _demo_backtest(history)


def test_served_beats_static_with_fewer_retrains_than_periodic(report: dict) -> None:
    served, static, periodic = (
        report["served"],
        report["baselines"]["static"],
        report["baselines"]["periodic"],
    )
    assert served["value"] > static["value"] + 0.05
    assert 1 <= served["retrains"] < periodic["retrains"]
    assert served["promotions"] >= 1 and static["retrains"] == 0
    assert periodic["retrains"] == report["steps"]


def test_the_report_has_every_field(report: dict) -> None:
    assert set(report) >= TOP
    assert report["metric"] == "f1" and report["policy"]["model"] == "demo_churn"
    for part in (report["served"], *report["baselines"].values()):
        assert set(part) >= PART
    assert set(report["baselines"]) == {"static", "periodic"}
    assert len(report["timeline"]) == report["steps"] == 18
    assert report["rows_scored"] == 18 * 180
    for entry in report["timeline"]:
        assert set(entry) >= ENTRY
    json.dumps(report)  # plain JSON: no NaN objects, no datetimes


def test_reoptimization_happens_after_the_drift_point_only(report: dict) -> None:
    timeline = report["timeline"]
    promoted = [e for e in timeline if e["promoted"]]
    assert promoted
    assert all(pd.Timestamp(e["start"]) > pd.Timestamp(demo.DRIFT_AT) for e in promoted)
    before = [e for e in timeline if pd.Timestamp(e["start"]) <= pd.Timestamp(demo.DRIFT_AT)]
    assert all((e["drift_share"] or 0) < 0.3 for e in before)
    assert timeline[0]["decision"] == "bootstrap" and timeline[-1]["champion_version"] >= 2


def test_the_plot_is_written(report: dict, tmp_path: Path) -> None:
    out = tmp_path / "plots" / "backtest.png"
    plot_report(report, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    # each run is in the timeline, so the plot marks promotions with their version and the
    # retrains that were not promoted
    runs = [e for e in report["timeline"] if e["run_outcome"]]
    assert runs and all(e["challenger_version"] for e in runs if e["promoted"])
    import copy

    rejected = copy.deepcopy(report)
    rejected["timeline"][5].update(run_outcome="rejected", challenger_version=9)
    plot_report(rejected, tmp_path / "rejected.png")
    assert (tmp_path / "rejected.png").stat().st_size > 20_000


def test_without_a_time_column_row_order_is_time(demo_policy: Policy, tmp_path: Path) -> None:
    source = demo.DemoSource(label_delay=timedelta(0))
    frame = source.read(demo.START - timedelta(hours=3), demo.START + timedelta(hours=2))
    path = tmp_path / "no_time.csv"
    frame.drop(columns=["ts"]).to_csv(path, index=False)
    policy = demo_policy.model_copy(deep=True)
    policy.monitor.every = timedelta(seconds=60)
    policy.monitor.window = timedelta(seconds=600)
    policy.train.window = timedelta(seconds=900)
    result = run_backtest(policy, path, warmup=Span(rows=900), step=Span(rows=60), progress=False)
    assert result["options"]["time_column"] is None
    assert result["steps"] == (len(frame) - 900 + 59) // 60
    assert result["rows_scored"] == len(frame) - 900


def test_labels_arrive_after_the_delay(demo_policy: Policy, history: Path) -> None:
    loaded = load_history(history, demo_policy)
    at = label_times(loaded, Span(rows=10))
    source = ReplaySource(loaded.frame, "ts", "churned", at)
    end = loaded.frame["ts"].iloc[100]
    window = source.read(loaded.frame["ts"].iloc[0], end)
    assert window["churned"].iloc[:90].notna().all()
    assert window["churned"].iloc[90:].isna().all()
    assert at[-1] == np.datetime64("2262-01-01")  # the last rows' labels never arrive


@pytest.mark.parametrize(
    ("labels", "hidden_as"),
    [
        (np.arange(8) % 2, "float64"),  # integer labels: NaN makes them float, as .loc does
        (np.arange(8, dtype="float32"), "float32"),
        (np.array(["a", "b"] * 4, dtype=object), "object"),
    ],
)
def test_a_replay_hides_labels_not_yet_arrived(labels: np.ndarray, hidden_as: str) -> None:
    ts = pd.Series(pd.date_range("2026-01-01", periods=8, freq="min", tz="UTC"))
    frame = pd.DataFrame({"ts": ts, "x": np.arange(8.0), "y": labels})
    arrive = ts.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    source = ReplaySource(frame, "ts", "y", arrive + np.timedelta64(150, "s"))
    seen = source.read(ts[1].to_pydatetime(), ts[6].to_pydatetime())
    assert seen["ts"].tolist() == ts[1:6].tolist() and seen.index.tolist() == list(range(5))
    assert str(seen["y"].dtype) == hidden_as
    # read at minute 6: rows of minutes 1-3 have their labels (2.5 minutes later), 4-5 not yet
    assert seen["y"].isna().tolist() == [False, False, False, True, True]
    assert seen["y"][:3].tolist() == labels[1:4].tolist()
    seen.loc[0, "x"] = -1.0  # the caller's own rows
    assert frame["x"].tolist() == list(np.arange(8.0)) and frame["y"].notna().all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["tenure"]), "lacks the policy's feature column 'tenure'"),
        (lambda f: f.drop(columns=["churned"]), "lacks the policy's target column 'churned'"),
        (lambda f: f.assign(ts="yesterday-ish"), "timestamp column 'ts' does not parse"),
    ],
)
def test_bad_files_fail_before_any_work(
    demo_policy: Policy, history: Path, tmp_path: Path, change, message: str
) -> None:
    bad = tmp_path / "bad.parquet"
    change(pd.read_parquet(history)).to_parquet(bad)
    with pytest.raises(Exception, match=message):
        run_backtest(demo_policy, bad, warmup=Span(rows=10), step=Span(rows=10), progress=False)


def test_a_warmup_longer_than_the_data_is_refused(demo_policy: Policy, history: Path) -> None:
    loaded = load_history(history, demo_policy)
    with pytest.raises(BacktestError, match="longer than the data"):
        cut_steps(loaded, parse_span("30d", "--warmup"), Span(rows=10))
    with pytest.raises(BacktestError, match="leaves no rows"):
        cut_steps(loaded, Span(rows=10**6), Span(rows=10))
    with pytest.raises(BacktestError, match="--step: expected a number of rows"):
        parse_span("soon", "--step")


def test_cli_writes_report_and_plot_and_rejects_bad_input(history: Path, tmp_path: Path) -> None:
    env = {**os.environ, "REOPTD_HOME": str(tmp_path / "unused")}
    out, png = tmp_path / "report.json", tmp_path / "plot.png"
    done = subprocess.run(
        [
            REOPTD,
            "backtest",
            "--policy",
            str(DEMO_POLICY),
            "--data",
            str(history),
            "--warmup",
            "3h",
            "--step",
            "1h",
            "--label-delay",
            "30m",
            "--report",
            str(out),
            "--plot",
            str(png),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert set(json.loads(out.read_text())) >= TOP and png.stat().st_size > 0
    assert "served" in done.stdout and "periodic" in done.stdout
    assert not (tmp_path / "unused").exists()  # a temporary home unless --home is given

    bad = subprocess.run(
        [
            REOPTD,
            "backtest",
            "--policy",
            str(DEMO_POLICY),
            "--data",
            str(history),
            "--warmup",
            "400d",
            "--report",
            str(tmp_path / "x.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "longer than the data" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "x.json").exists()


def test_labels_come_from_the_policys_label_files_with_their_arrival(tmp_path: Path) -> None:
    """A production file without the target, labels in `data.labels` files with `arrived`."""
    from reoptd.policy import load_policy
    from reoptd.policy._schema import LabelSource

    source = demo.DemoSource(label_delay=timedelta(0))
    frame = source.read(demo.START - timedelta(hours=3), demo.START + timedelta(hours=1))
    production = tmp_path / "production.parquet"
    frame.drop(columns=["churned"]).to_parquet(production, index=False)
    labels = frame[["request_id", "churned"]].copy()
    labels["labelled_at"] = frame["ts"] + pd.Timedelta(minutes=45)
    labels.iloc[-50:, labels.columns.get_loc("churned")] = np.nan  # never labelled
    labels.to_parquet(tmp_path / "labels-0.parquet", index=False)
    policy = load_policy(DEMO_POLICY).model_copy(deep=True)
    policy.data.labels = LabelSource(
        kind="files", path=str(tmp_path / "labels-*.parquet"), arrived="labelled_at"
    )
    history = load_history(production, policy)
    assert history.labels_from == str(tmp_path / "labels-*.parquet")
    assert history.frame["churned"].notna().sum() == len(frame) - 50
    at = label_times(history, Span(rows=0))
    # a label is visible 45 minutes after its row, never for the unlabelled ones
    assert (at[:10] - history.ts[:10] == np.timedelta64(45 * 60, "s")).all()
    assert (at[-50:] == np.datetime64("2262-01-01", "ns")).all()
    replay = ReplaySource(history.frame, "ts", "churned", at)
    seen = replay.read(demo.START - timedelta(hours=1), demo.START)
    assert seen["churned"].isna().sum() == 45 * 6  # the last 45 minutes wait for their labels
    # no label files match: the error names the file and the glob
    policy.data.labels.path = str(tmp_path / "none-*.parquet")
    with pytest.raises(BacktestError, match=r"none-\*\.parquet"):
        load_history(production, policy)


def test_the_report_is_the_same_on_the_memory_store_as_on_sqlite(
    history: Path, report: dict, tmp_path: Path
) -> None:
    """Without ``home`` the loop's state lives in ``MemoryStore``; with one, in an SQLite
    database there. The store is where the decisions are kept, not what they are."""
    from reoptd.backtest import report_figures
    from reoptd.store import open_store

    on_sqlite = _demo_backtest(history, home=tmp_path)
    assert report_figures(on_sqlite) == report_figures(report)
    assert report["served"]["retrains"] >= 1  # runs, decisions and backfills were stored
    store = open_store(f"sqlite:///{tmp_path / 'reoptd.db'}", tmp_path / "artifacts")
    try:
        name = report["policy"]["model"]
        assert len(store.checks(name, limit=1000)) == report["steps"]
        assert any(c.signals.get("backfill") for c in store.checks(name, limit=1000))
    finally:
        store.close()
