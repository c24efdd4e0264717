"""A cycle records its check once, with every signal (shadow, guard, backfill, labels) in it;
a loop's constructor touches neither the store nor the metrics; ``dataset_drift`` has one source."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.metrics import Metrics
from reoptd.policy import Policy, parse_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import Store

PROMOTE = "  min_improvement: 0.005\n"


def _shadow_policy() -> Policy:
    text = DEMO_POLICY.read_text().replace(
        PROMOTE,
        PROMOTE + "  mode: shadow\n  shadow_checks: 2\n"
        "  rollback: {drop: 0.02, within: 6h, min_labels: 150}\n",
    )
    return parse_policy(text, "test.yaml")


def test_each_cycle_writes_its_check_once_with_all_its_signals(
    sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    adds: list[int] = []
    updates: Counter[int] = Counter()
    add_check, update_check = sqlite_registry.add_check, sqlite_registry.update_check

    def counting_add(name: str, **fields: Any) -> Any:
        row = add_check(name, **fields)
        adds.append(row.id)
        return row

    def counting_update(check_id: int, **changes: Any) -> Any:
        updates[check_id] += 1
        return update_check(check_id, **changes)

    sqlite_registry.add_check = counting_add  # type: ignore[method-assign]  # a spy
    sqlite_registry.update_check = counting_update  # type: ignore[method-assign]  # a spy
    policy = _shadow_policy()
    loop = ModelLoop(policy, sqlite_registry, metrics)
    loop.start()
    cycles = 0
    end = clock.now() + timedelta(hours=10)
    while clock.now() < end:
        before = len(adds)
        outcome = loop.cycle(clock.now())
        if outcome.check is not None:
            cycles += 1
            assert len(adds) == before + 1  # one insert per cycle...
            assert updates[outcome.check.id] == 0  # ...and no re-write of it
        clock.advance(policy.monitor.every)
    checks = sqlite_registry.checks(policy.model, limit=1000)
    assert cycles == len(checks) == len(adds)
    # the verdicts were recorded on the checks in that single write
    assert any("shadow" in c.signals for c in checks)
    assert all(c.signals["schema_version"] == 1 for c in checks)


def test_the_constructor_does_no_io(demo_policy: Policy, metrics: Metrics) -> None:
    class Untouchable:
        url = "sqlite://"

        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the constructor called registry.{name}")

    loop = ModelLoop(demo_policy, Untouchable(), metrics)  # type: ignore[arg-type]  # a probe
    assert loop.name == demo_policy.model
    sample = metrics.registry.get_sample_value
    assert sample("reoptd_policy_valid", {"model": demo_policy.model}) is None


def test_dataset_drift_is_computed_once_by_the_check(
    demo_policy: Policy, sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    """The check decides dataset drift; the stored row and the gauge both take its verdict."""
    import reoptd.cycle.loop as loop_module

    real_check = loop_module.check
    seen = []

    def flipped(*args: Any, **kwargs: Any) -> Any:
        result = real_check(*args, **kwargs)
        result.dataset_drift = not result.dataset_drift  # whatever the check says goes
        seen.append(result.dataset_drift)
        return result

    loop = ModelLoop(demo_policy, sqlite_registry, metrics)
    loop.start()
    loop.cycle(clock.now())  # bootstrap
    loop_module.check = flipped  # type: ignore[assignment]  # restored below
    try:
        row = loop.cycle(clock.advance(timedelta(minutes=30))).check
    finally:
        loop_module.check = real_check  # type: ignore[assignment]
    assert row is not None and row.status == "ok" and seen
    assert row.dataset_drift is seen[-1]
    gauge = metrics.registry.get_sample_value("reoptd_dataset_drift", {"model": loop.name})
    assert gauge == int(seen[-1])
    assert row.dataset_drift is not (row.drift_share >= demo_policy.monitor.drift.drift_share)
