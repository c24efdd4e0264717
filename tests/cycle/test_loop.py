"""The whole cycle (check -> decide -> optimize -> promote) on the demo stream, simulated clock."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import FileSource, demo
from reoptd.metrics import Metrics
from reoptd.policy import Policy
from reoptd.store import Store
from reoptd.store.sql import SqlStore


def _run(loop: ModelLoop, clock: SimulatedClock, hours: float) -> None:
    every = loop.policy.monitor.every
    end = clock.now() + timedelta(hours=hours)
    while clock.now() < end:
        loop.cycle(clock.now())
        clock.advance(every)


def test_demo_drift_is_flagged_after_the_drift_point_and_a_better_model_is_promoted(
    demo_policy: Policy, sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    metrics.watch_champions(sqlite_registry, clock)
    loop = ModelLoop(demo_policy, sqlite_registry, metrics)
    _run(loop, clock, hours=8)
    name = demo_policy.model
    checks = sqlite_registry.checks(name, limit=100)
    before = [c for c in checks if c.at <= demo.DRIFT_AT]
    after = [c for c in checks if demo.DRIFT_AT + timedelta(hours=1) <= c.at]
    assert len(before) >= 5 and all(c.status == "ok" for c in checks)
    assert all(c.drift_share < 0.3 for c in before), [c.drift_share for c in before]
    first_after = [c for c in after if c.champion_version == 1]
    assert first_after and first_after[0].drift_share > 0.3
    assert {"monthly_charges", "support_calls"} <= {
        f for f, d in first_after[0].features.items() if d["drifted"]
    }

    runs = sqlite_registry.runs(name)
    assert runs[0].trigger == "bootstrap" and runs[0].outcome == "promoted"
    assert all(r.started_at > demo.DRIFT_AT for r in runs[1:])  # no retrain before the drift
    drift_runs = [r for r in runs if r.trigger == "drift_share" and r.outcome == "promoted"]
    assert drift_runs, [(r.trigger, r.outcome, r.reason) for r in runs]

    # The first drift-triggered challenger was validated against v1 on the same newest rows,
    # which lie after the drift point, and beat it there.
    v2 = sqlite_registry.version(name, drift_runs[0].challenger_version)
    assert v2.parent_version == 1
    assert pd.Timestamp(v2.metrics["holdout_start"]) > pd.Timestamp(demo.DRIFT_AT)
    assert v2.metrics["holdout"]["f1"] > v2.metrics["champion_on_holdout"]["f1"]
    assert sqlite_registry.model(name).champion_version >= 2

    decisions = [d for d in (sqlite_registry.last_decision(name),) if d]
    assert decisions and decisions[0].reasons
    assert metrics.registry.get_sample_value("reoptd_promotions_total", {"model": name}) == len(
        [r for r in runs if r.outcome == "promoted"]
    )
    assert metrics.registry.get_sample_value(
        "reoptd_reoptimizations_total",
        {"model": name, "trigger": "drift_share", "outcome": "promoted"},
    ) == len(drift_runs)


def test_cooldown_holds_a_run_the_triggers_ask_for(
    demo_policy: Policy, sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    policy = demo_policy.model_copy(deep=True)
    policy.guards.cooldown = timedelta(days=1)
    loop = ModelLoop(policy, sqlite_registry, metrics)
    _run(loop, clock, hours=6)
    assert [r.trigger for r in sqlite_registry.runs(policy.model)] == ["bootstrap"]
    held = [d for d in sqlite_registry.decisions(policy.model) if d.triggers and not d.fire]
    assert held, "the drift trigger should have fired and been held"
    assert "cooldown: last run" in held[0].reasons and "< 1d" in held[0].reasons


def _write(frame: pd.DataFrame, path) -> None:
    frame.to_parquet(path, index=False)


def test_bad_batches_are_named_per_column_and_the_daemon_goes_on(
    demo_policy: Policy,
    sqlite_registry: Store,
    clock: SimulatedClock,
    metrics: Metrics,
    tmp_path,
) -> None:
    source = demo.DemoSource()
    history = source.read(demo.START - timedelta(hours=4), demo.START)
    _write(history, tmp_path / "000-history.parquet")
    policy = demo_policy.model_copy(deep=True)
    file_source = FileSource(
        str(tmp_path / "*.parquet"), policy.timestamp, required=policy.features.all
    )
    loop = ModelLoop(policy, sqlite_registry, metrics, source=file_source)
    loop.cycle(clock.now())  # bootstrap v1 from the files
    assert sqlite_registry.model(policy.model).champion_version == 1

    def feed(name: str, spoil=None):
        """Write the next hour of the stream as one file (spoiled if asked), then check."""
        start = clock.now()
        frame = source.read(start, start + timedelta(hours=1))
        if spoil is not None:
            frame = spoil(frame)
        _write(frame, tmp_path / name)
        clock.advance(timedelta(hours=1))
        row = loop.cycle(clock.now()).check
        if spoil is not None:
            (tmp_path / name).unlink()  # the operator removes the bad file
        return row

    errors = {"model": policy.model}
    # A batch without the contract column: the check fails naming file and column.
    row = feed("001.parquet", lambda f: f.drop(columns=["contract"]))
    assert row.status == "failed" and "001.parquet: feature column 'contract' is missing" in (
        row.reason
    )
    assert metrics.registry.get_sample_value("reoptd_data_errors_total", errors) == 1

    # Text in a numerical column: that column is not tested (and the model cannot score the
    # window), the other columns are; the check itself succeeds.
    row = feed("002.parquet", lambda f: f.assign(tenure=f["tenure"].astype(str)))
    assert row.status == "ok"
    assert row.features["tenure"]["status"].startswith("not_tested: wrong type")
    assert row.features["monthly_charges"]["status"] == "tested"
    assert "'tenure' should be numerical" in row.signals["data_problem"]
    tenure = {**errors, "feature": "tenure"}
    assert metrics.registry.get_sample_value("reoptd_feature_tested", tenure) == 0
    assert metrics.registry.get_sample_value("reoptd_data_errors_total", errors) == 2

    # A NaN: the column is tested on its other values, the missing share is flagged.
    def hole(f: pd.DataFrame) -> pd.DataFrame:
        f.loc[3, "monthly_charges"] = float("nan")
        return f

    row = feed("003.parquet", hole)
    assert row.status == "ok" and row.features["monthly_charges"]["status"] == "tested"
    quality = row.signals["quality"]
    assert round(quality["missing_share"]["monthly_charges"] * row.rows) == 1
    assert any(line.startswith("monthly_charges: ") for line in quality["flagged"])
    assert row.signals["model_rows"] == row.rows - 1
    assert metrics.registry.get_sample_value("reoptd_data_errors_total", errors) == 2

    # Good data again: the check succeeds; the champion never changed.
    row = feed("004.parquet")
    assert row.status == "ok" and row.rows > 0
    assert sqlite_registry.model(policy.model).champion_version == 1


def test_an_empty_window_is_skipped_with_the_reason(
    demo_policy: Policy,
    sqlite_registry: Store,
    clock: SimulatedClock,
    metrics: Metrics,
    tmp_path,
) -> None:
    source = demo.DemoSource()
    _write(source.read(demo.START - timedelta(hours=4), demo.START), tmp_path / "a.parquet")
    loop = ModelLoop(
        demo_policy, sqlite_registry, metrics, source=FileSource(str(tmp_path / "*.parquet"), "ts")
    )
    loop.cycle(clock.now())
    clock.advance(timedelta(days=1))  # nothing arrived since
    row = loop.cycle(clock.now()).check
    assert row.status == "skipped" and "0 rows" in row.reason
    assert (
        metrics.registry.get_sample_value(
            "reoptd_checks_total", {"model": demo_policy.model, "outcome": "skipped"}
        )
        == 1
    )


def test_a_corrupt_champion_artifact_fails_the_check_and_is_not_replaced_silently(
    demo_policy: Policy, sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    loop = ModelLoop(demo_policy, sqlite_registry, metrics)
    loop.cycle(clock.now())
    champion = sqlite_registry.champion(demo_policy.model)
    sqlite_registry.artifacts.path(champion.sha256).write_bytes(b"bit rot")
    fresh = ModelLoop(demo_policy, sqlite_registry, metrics)  # as after a restart
    clock.advance(timedelta(minutes=30))
    row = fresh.cycle(clock.now()).check
    assert row.status == "failed" and "corrupt" in row.reason
    assert sqlite_registry.model(demo_policy.model).champion_version == champion.version


def test_a_pipeline_without_validate_promotes_and_says_so(
    demo_policy: Policy, sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    from reoptd.policy._schema import Step

    policy = demo_policy.model_copy(deep=True)
    policy.pipeline = [Step(name="retrain")]
    loop = ModelLoop(policy, sqlite_registry, metrics)
    loop.cycle(clock.now())
    run = loop.optimize(clock.now() + timedelta(hours=1), trigger="manual")
    assert run.outcome == "promoted" and "unvalidated" in run.reason


def test_promotions_and_rollbacks_are_counted_from_the_registry_and_interrupted_runs_closed(
    demo_policy: Policy, sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    metrics.watch_champions(sqlite_registry, clock)
    loop = ModelLoop(demo_policy, sqlite_registry, metrics)
    loop.cycle(clock.now())
    loop.optimize(clock.now(), trigger="manual")
    name = demo_policy.model
    if sqlite_registry.model(name).champion_version == 1:
        sqlite_registry.promote(name, 2, at=clock.now())
    # Another process (the CLI) rolls back: the scrape sees it, no in-process counter needed.
    other = SqlStore(sqlite_registry.url, sqlite_registry.artifacts)
    other.rollback(name, at=clock.now(), reason="worse in production")
    get = metrics.registry.get_sample_value
    assert get("reoptd_promotions_total", {"model": name}) == 2
    assert get("reoptd_rollbacks_total", {"model": name}) == 1
    info = {"model": name, "version": "1", "trigger": "bootstrap"}
    assert get("reoptd_champion_info", {**info, "reason": "worse in production"}) == 1

    sqlite_registry.start_run(name, started_at=clock.now(), trigger="drift_share")
    ModelLoop(demo_policy, sqlite_registry, metrics).start()  # a restart after a kill mid-run
    last = sqlite_registry.runs(name)[-1]
    assert last.outcome == "failed" and last.reason.startswith("interrupted")


@pytest.mark.slow
def test_a_previous_window_reference_lets_drift_settle_after_a_shift(
    demo_policy: Policy, sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    """Against the training rows a shift drifts for as long as the champion lives; against the
    previous window it is flagged while it happens, then the new normal is the reference."""
    shares = {}
    for choice in ("training", "previous_window"):
        policy = demo_policy.model_copy(deep=True, update={"model": f"ref_{choice}"})
        policy.triggers = []  # no retrain: the same champion throughout
        policy.monitor.reference = choice
        loop = ModelLoop(policy, sqlite_registry, metrics)
        for hours in (0, 3.5, 4, 8):
            loop.cycle(demo.START + timedelta(hours=hours))
        shares[choice] = [c.drift_share for c in sqlite_registry.checks(policy.model, limit=10)]
    training, previous = shares["training"], shares["previous_window"]
    assert training[-1] > 0.3 and training[-2] > 0.3  # 4h and 8h: still drifted
    assert previous[-2] > 0.3  # 4h: the window straddles the shift, the one before it does not
    assert previous[-1] < 0.3  # 8h: both windows after the shift
