"""Late labels joined by id, and the backfill of past windows, through the real loop.

Predictions land in Parquet files without labels; labels come later in their own files, with the
time each arrived. A check made before the labels has no metric; once they land, the next check
re-scores that old window, and its metric appears in the database, in Prometheus and to triggers.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from label_streams import START, policy, stream

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.cycle.backfill import due
from reoptd.data import LabelFiles, join_labels
from reoptd.errors import DataError, PolicyError
from reoptd.metrics import Metrics
from reoptd.models import load_model
from reoptd.policy import parse_policy
from reoptd.store import CheckRecord, Store

T0 = START + timedelta(hours=6)  # the daemon starts here; rows before it are history


def _policy(tmp_path: Path, **changes):
    return policy(
        data={
            "production": {"kind": "files", "path": str(tmp_path / "pred" / "*.parquet")},
            "labels": {
                "kind": "files",
                "path": str(tmp_path / "labels" / "*.parquet"),
                "arrived": "labelled_at",
            },
        },
        monitor={"every": "1h", "window": "2h", "min_rows": 50},
        **changes,
    )


def _write_labels(tmp_path: Path, name: str, rows: pd.DataFrame, arrived) -> None:
    labels = rows[["request_id", "y"]].assign(labelled_at=arrived)
    (tmp_path / "labels").mkdir(exist_ok=True)
    labels.to_parquet(tmp_path / "labels" / f"{name}.parquet", index=False)


def test_join_labels_last_wins_and_counts_what_it_cannot_use() -> None:
    p = policy()
    predictions = pd.DataFrame({"request_id": [1, 2, 3, 4], "y": [float("nan"), 1.0, None, None]})
    labels = pd.DataFrame({"request_id": [1, 3, 3, 99], "y": [0.0, 0.0, 1.0, 1.0]})
    joined = join_labels(predictions, labels, p)
    assert joined.frame["y"].tolist()[:3] == [0.0, 1.0, 1.0]  # 2 keeps its own; 3: last wins
    assert pd.isna(joined.frame["y"].iloc[3])
    assert joined.stats() == {"matched": 2, "unmatched": 1, "duplicates": 1}
    with pytest.raises(DataError, match="labels: column 'y' is missing"):
        join_labels(predictions, labels.rename(columns={"y": "label"}), p)


def test_a_label_source_needs_the_id_column(tmp_path: Path) -> None:
    text = tmp_path / "p.yaml"
    body = _policy(tmp_path).model_dump(mode="json", by_alias=True)
    body.pop("id")
    import yaml

    text.write_text(yaml.safe_dump(body))
    with pytest.raises(PolicyError) as error:
        parse_policy(text.read_text(), str(text))
    assert "data.labels" in str(error.value) and "`id`" in str(error.value)


def test_label_files_name_the_file_with_a_missing_column(tmp_path: Path) -> None:
    p = _policy(tmp_path)
    (tmp_path / "labels").mkdir()
    bad = tmp_path / "labels" / "bad.parquet"
    pd.DataFrame({"request_id": [1], "labelled_at": [START]}).to_parquet(bad)
    feed = LabelFiles(str(tmp_path / "labels" / "*.parquet"), p, arrived="labelled_at")
    with pytest.raises(DataError, match=r"bad\.parquet: label column 'y' is missing"):
        feed.labels(T0)


@pytest.mark.slow
def test_the_metric_of_an_old_window_appears_once_its_labels_land(
    tmp_path: Path, sqlite_registry: Store, metrics: Metrics
) -> None:
    frame = stream("none", change_at=T0 + timedelta(days=1), hours=10, every=timedelta(seconds=10))
    (tmp_path / "pred").mkdir()
    frame.drop(columns="y").to_parquet(tmp_path / "pred" / "rows.parquet", index=False)
    history = frame[frame.ts < T0 - timedelta(hours=1)]
    _write_labels(tmp_path, "history", history, history.ts + timedelta(minutes=30))
    # a metric trigger over two checks: only backfill can give the older one a metric
    p = _policy(tmp_path, triggers=[{"metric": {"below": 1.01, "min_labels": 50, "for": 2}}])
    clock = SimulatedClock(T0)
    loop = ModelLoop(p, sqlite_registry, metrics)
    loop.start()
    assert type(loop.source).__name__ == "LabeledSource"
    name = p.model

    # bootstrap v1 on the labelled history without a check (a first cycle would also check the
    # window ending at T0, whose rows the late labels below cover too)
    loop.optimize(clock.now(), trigger="bootstrap")
    assert sqlite_registry.model(name).champion_version == 1
    early = loop.cycle(clock.advance(timedelta(hours=1))).check  # T0+1h: window without labels
    assert early is not None and early.status == "ok" and early.rows == 720
    assert early.labelled_rows == 0 and early.metrics == {}
    sample = metrics.registry.get_sample_value
    assert sample("reoptd_backfilled_windows_total", {"model": name}) == 0

    # The labels of that window land at T0+1h30, with one duplicate id and one unknown id.
    window = frame[(frame.ts >= early.window_start) & (frame.ts < early.window_end)]
    late = pd.concat([window, window.tail(1).assign(y=1 - window.y.iloc[-1])])
    late = pd.concat([late, pd.DataFrame({"request_id": [10**9], "y": [1.0]})])
    _write_labels(tmp_path, "late", late, T0 + timedelta(minutes=90))

    outcome = loop.cycle(clock.advance(timedelta(hours=1)))  # T0+2h
    old = next(c for c in sqlite_registry.checks(name) if c.id == early.id)
    estimation = old.signals["estimation"]
    assert old.labelled_rows == 720
    assert set(old.metrics) == {"accuracy"} and 0.6 < old.metrics["accuracy"] < 1.0
    record = old.signals["backfill"]
    assert record["labelled_rows_before"] == 0 and record["metrics_before"] == {}
    assert record["metrics"] == old.metrics
    assert record["at"] == (T0 + timedelta(hours=2)).isoformat()
    # Re-scored by v1, the champion of that check, on the labels that arrived (for the duplicate
    # id, the last one), whatever the champion is by now.
    v1 = load_model(sqlite_registry.load_artifact(sqlite_registry.version(name, 1)))
    last = window.request_id == window.request_id.iloc[-1]
    truth = window.y.where(~last, 1 - window.y.iloc[-1])
    expected = (v1.predict(window) == truth).mean()
    assert old.metrics["accuracy"] == pytest.approx(expected)
    current = outcome.check
    assert current is not None
    assert current.signals["backfilled"] == [
        {
            "check_id": early.id,
            "window_end": early.window_end.isoformat(),
            "labelled_rows": 720,
            "metrics": old.metrics,
            "estimated": old.signals["estimated"],
            "realised": estimation["realised"],
        }
    ]
    assert current.signals["labels"]["unmatched"] == 1
    assert current.signals["labels"]["duplicates"] == 1
    assert sample("reoptd_backfilled_windows_total", {"model": name}) == 1
    assert sample("reoptd_backfilled_metric", {"model": name, "metric": "accuracy"}) == (
        pytest.approx(old.metrics["accuracy"])
    )
    # the realised values are stored beside the label-free estimates of that window
    assert set(estimation["realised"]) == {"accuracy", "f1", "precision", "recall", "roc_auc"}
    assert estimation["realised"]["accuracy"] == pytest.approx(old.metrics["accuracy"])
    error = old.signals["estimated"]["accuracy"] - estimation["realised"]["accuracy"]
    assert abs(error) < 0.1
    assert sample("reoptd_estimation_error", {"model": name, "metric": "accuracy"}) == (
        pytest.approx(error)
    )
    assert sample("reoptd_unmatched_labels", {"model": name}) == 1
    assert sample("reoptd_duplicate_labels", {"model": name}) == 1
    # The metric trigger judged two checks: the backfilled one and the current one.
    assert outcome.decision is not None and outcome.decision.fire
    assert outcome.decision.triggers == ["metric"]

    # Nothing new arrived: the next check re-scores nothing and changes no old record.
    loop.cycle(clock.advance(timedelta(hours=1)))
    assert sample("reoptd_backfilled_windows_total", {"model": name}) == 1
    again = next(c for c in sqlite_registry.checks(name) if c.id == early.id)
    assert again.signals["backfill"]["at"] == record["at"]

    # `reoptd status` shows the re-scored window
    from typer.testing import CliRunner

    from reoptd.cli import app

    shown = CliRunner().invoke(app, ["status", "--json"], env={"REOPTD_HOME": str(tmp_path)})
    assert shown.exit_code == 0, shown.output
    entry = json.loads(shown.stdout)["models"][0]
    assert entry["last_backfill"] == {
        "at": record["at"],
        "window_end": early.window_end.isoformat(),
        "labelled_rows_before": 0,
        "labelled_rows": 720,
        "metrics": old.metrics,
    }
    assert set(entry["estimated"]) == {"accuracy", "f1", "precision", "recall", "roc_auc"}
    band = entry["estimation"]
    assert band["confidence"] == 0.9 and band["reliable"] is True
    assert band["lower"]["accuracy"] <= entry["estimated"]["accuracy"] <= band["upper"]["accuracy"]
    assert entry["last_realised"]["window_end"] == early.window_end.isoformat()
    assert entry["last_realised"]["error"]["accuracy"] == pytest.approx(error)
    text = CliRunner().invoke(app, ["status"], env={"REOPTD_HOME": str(tmp_path)}).stdout
    assert "re-scored with 720 labels (had 0): accuracy" in text
    assert "estimated without labels (90% bands): accuracy" in text
    realised = estimation["realised"]["accuracy"]
    assert f"accuracy {realised:.3f} (estimated" in text


def test_due_windows_are_recent_unlabelled_and_taken_least_recently_tried_first() -> None:
    now = T0 + timedelta(days=2)

    def row(id_: int, hours_ago: float, labelled: int, tried: float | None = None) -> CheckRecord:
        at = now - timedelta(hours=hours_ago)
        signals = (
            {}
            if tried is None
            else {"backfill": {"tried": (now - timedelta(hours=tried)).isoformat()}}
        )
        return CheckRecord(
            id=id_,
            model_id=1,
            at=at,
            window_start=at - timedelta(hours=2),
            window_end=at,
            status="ok",
            champion_version=1,
            rows=100,
            labelled_rows=labelled,
            signals=signals,
        )

    checks = [
        row(1, 30, 0),  # older than the 1d horizon
        row(2, 20, 100),  # fully labelled
        row(3, 10, 40, tried=1),  # tried an hour ago
        row(4, 8, 0),  # never tried
        row(5, 6, 0, tried=5),
        row(6, 4, 0),
        row(7, 2, 0),
        CheckRecord(
            id=8,
            model_id=1,
            at=now - timedelta(hours=1),
            window_start=now,
            window_end=now,
            status="skipped",
            champion_version=1,
        ),
    ]
    p = policy(monitor={"backfill": {"within": "1d", "max_windows": 3}})
    assert [c.id for c in due(p, checks, now)] == [4, 5, 6]
    p = policy(monitor={"backfill": {"within": "1d", "max_windows": 10}})
    assert [c.id for c in due(p, checks, now)] == [4, 5, 6, 7, 3]
    assert due(policy(monitor={"backfill": {"within": None}}), checks, now) == []
