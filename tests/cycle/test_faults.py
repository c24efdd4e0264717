"""Nothing escapes a cycle unrecorded: foreign exceptions, inf in a window, a database outage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import DemoSource
from reoptd.metrics import Metrics
from reoptd.policy import Policy
from reoptd.signals import Signals
from reoptd.store import Store
from reoptd.store.sql import SqlStore


class FlakySource:
    """The demo stream, or whatever ``fault`` says: an exception to raise, or a change to make
    to the rows read."""

    name = "flaky demo"

    def __init__(self) -> None:
        self.demo = DemoSource()
        self.fault: BaseException | str | None = None

    def read(self, start, end) -> pd.DataFrame:
        if isinstance(self.fault, BaseException):
            raise self.fault
        frame = self.demo.read(start, end)
        if self.fault == "inf":
            frame.loc[frame.index[::7], "monthly_charges"] = np.inf
        if self.fault == "empty":
            frame = frame.iloc[:0]
        return frame


def _errors(metrics: Metrics, model: str, stage: str) -> float:
    value = metrics.registry.get_sample_value(
        "reoptd_cycle_errors_total", {"model": model, "stage": stage}
    )
    return value or 0.0


@pytest.mark.slow
def test_any_exception_in_a_cycle_is_recorded_counted_and_the_next_cycle_runs(
    demo_policy: Policy, sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    name, store = demo_policy.model, sqlite_registry
    source = FlakySource()
    loop = ModelLoop(demo_policy, store, metrics, source=source)
    loop.start()

    source.fault = TypeError("unsupported operand type(s)")  # in the bootstrap run
    outcome = loop.cycle(clock.now())
    assert outcome.run is not None and outcome.run.outcome == "failed"
    assert outcome.run.reason == "TypeError: unsupported operand type(s)"
    assert [r.outcome for r in store.runs(name)] == ["failed"]  # no "running" row left
    assert _errors(metrics, name, "optimize") == 1

    source.fault = None
    clock.advance(demo_policy.monitor.every)
    assert loop.cycle(clock.now()).run.outcome == "promoted"  # type: ignore[union-attr]

    source.fault = FileNotFoundError(2, "No such file or directory", "batch-7.csv")
    clock.advance(demo_policy.monitor.every)
    cut = loop.cycle(clock.now())
    failed = cut.check
    assert failed is not None and failed.status == "failed"
    assert cut.error is not None and cut.error.startswith("FileNotFoundError:")
    assert failed.reason.startswith("check: FileNotFoundError:") and "batch-7.csv" in failed.reason
    assert _errors(metrics, name, "check") == 1

    source.fault = "inf"  # a data problem of the check, not a crash
    clock.advance(demo_policy.monitor.every)
    data_errors = metrics.registry.get_sample_value("reoptd_data_errors_total", {"model": name})
    check = loop.cycle(clock.now()).check
    assert check is not None and check.status == "ok", check
    problem = Signals.from_json(check.signals).data_problem
    assert problem and "'monthly_charges' has" in problem and "non-finite" in problem
    assert {"tenure", "support_calls"} <= set(check.features)  # the other columns are tested
    assert check.features["tenure"]["status"] == "tested"
    after = metrics.registry.get_sample_value("reoptd_data_errors_total", {"model": name})
    assert after == (data_errors or 0) + 1

    source.fault = None
    clock.advance(demo_policy.monitor.every)
    assert loop.cycle(clock.now()).check.status == "ok"  # type: ignore[union-attr]
    assert not [r for r in store.runs(name) if r.outcome == "running"]


def _refuse(admin: str, database: str, refuse: bool) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(not refuse).lower()}')
        if refuse:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )


@pytest.mark.external
def test_cycles_during_a_database_outage_are_recorded_after_it(
    demo_policy: Policy, postgres_url: str, tmp_path: Path, clock: SimulatedClock
) -> None:
    store = SqlStore(postgres_url, tmp_path / "artifacts")
    base, database = postgres_url.rsplit("/", 1)
    admin = base.replace("postgresql+psycopg", "postgresql") + "/postgres"
    metrics, source = Metrics(), FlakySource()
    source.fault = "empty"  # no rows: the bootstrap fails at once, no training needed
    loop = ModelLoop(demo_policy, store, metrics, source=source)
    name, every = demo_policy.model, demo_policy.monitor.every
    try:
        loop.cycle(clock.now())
        _refuse(admin, database, True)
        try:
            first = clock.advance(every)
            down = loop.cycle(first)  # nothing raised: the cycle could not record, and says so
            assert down.check is None and (down.error or "").startswith("StoreUnavailable: ")
            last = clock.advance(every)
            loop.cycle(last)
            assert _errors(metrics, name, "store") == 2
        finally:
            _refuse(admin, database, False)
        loop.cycle(clock.advance(every))
        [outage] = [c for c in store.checks(name, limit=10) if "unreachable" in c.reason]
        assert outage.status == "failed"
        assert f"from {first.isoformat()} to {last.isoformat()}" in outage.reason
        assert database in outage.reason
        assert len(store.runs(name)) == 2  # the first cycle's and the one after the outage
        assert not [r for r in store.runs(name) if r.outcome == "running"]
    finally:
        store.close()


def test_a_model_whose_cycles_crash_does_not_disturb_another(
    demo_policy: Policy, sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    other = demo_policy.model_copy(update={"model": "other_model"})
    broken, fine = FlakySource(), FlakySource()
    broken.fault = RecursionError("maximum recursion depth exceeded")
    fine.fault = "empty"  # fails its bootstrap at once, as a reoptd error: no training needed
    loops = [
        ModelLoop(demo_policy, sqlite_registry, metrics, source=broken),
        ModelLoop(other, sqlite_registry, metrics, source=fine),
    ]
    for _ in range(3):
        for loop in loops:
            loop.cycle(clock.now())
        clock.advance(demo_policy.monitor.every)
    crashed = sqlite_registry.runs(demo_policy.model)
    assert [r.outcome for r in crashed] == ["failed"] * 3
    assert all(r.reason.startswith("RecursionError: maximum recursion") for r in crashed)
    assert [r.outcome for r in sqlite_registry.runs("other_model")] == ["failed"] * 3
    assert not any("RecursionError" in r.reason for r in sqlite_registry.runs("other_model"))
    assert _errors(metrics, demo_policy.model, "optimize") == 3
    assert _errors(metrics, "other_model", "optimize") == 0
