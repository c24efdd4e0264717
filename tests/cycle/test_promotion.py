"""Promotion rules of the policy: manual approval, shadow mode, limits, budgets, rollback guard."""

from __future__ import annotations

from datetime import timedelta

import pytest

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.errors import ReoptdError
from reoptd.metrics import Metrics
from reoptd.policy import Policy, parse_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import Store


def _policy(**replace: str) -> Policy:
    text = DEMO_POLICY.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return parse_policy(text, "test.yaml")


def _run(loop: ModelLoop, clock: SimulatedClock, hours: float) -> None:
    end = clock.now() + timedelta(hours=hours)
    while clock.now() < end:
        loop.cycle(clock.now())
        clock.advance(loop.policy.monitor.every)


PROMOTE = "  min_improvement: 0.005\n"


def test_manual_mode_waits_for_approval(
    sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    policy = _policy(**{PROMOTE: PROMOTE + "  mode: manual\n"})
    metrics.watch_champions(sqlite_registry, clock)
    loop = ModelLoop(policy, sqlite_registry, metrics)
    _run(loop, clock, hours=6)
    name = policy.model
    runs = [r for r in sqlite_registry.runs(name) if r.trigger != "bootstrap"]
    assert any(r.outcome == "pending" and "waiting for approval" in r.reason for r in runs)
    assert sqlite_registry.model(name).champion_version == 1
    waiting = sqlite_registry.pending(name)
    assert metrics.registry.get_sample_value("reoptd_pending_approvals", {"model": name}) == len(
        waiting
    )
    event = sqlite_registry.approve(name, None, at=clock.now(), reason="looks good")
    assert event.to_version == waiting[-1].version
    assert sqlite_registry.model(name).champion_version == waiting[-1].version
    with pytest.raises(ReoptdError, match="not waiting for approval"):
        sqlite_registry.approve(name, 1, at=clock.now(), reason="")


def test_shadow_mode_promotes_only_after_winning_live_checks(
    sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    policy = _policy(**{PROMOTE: PROMOTE + "  mode: shadow\n  shadow_checks: 2\n"})
    loop = ModelLoop(policy, sqlite_registry, metrics)
    _run(loop, clock, hours=10)
    name = policy.model
    runs = sqlite_registry.runs(name)
    assert any(r.outcome == "shadow" for r in runs)
    promotions = [e for e in sqlite_registry.events(name) if e.from_version is not None]
    assert promotions and all("shadow v" in e.reason for e in promotions)
    judged = [
        c.signals["shadow"]
        for c in sqlite_registry.checks(name, 100)
        if "shadow" in (c.signals or {})
    ]
    assert judged and all(j["rows"] >= 30 for j in judged)
    first = promotions[0]
    wins = [j for j in judged if j["version"] == first.to_version]
    assert len(wins) >= 2 and all(j["better"] for j in wins)


@pytest.mark.parametrize(
    ("limit", "message"),
    [("  max_size: 1kB\n", "max_size 1kB"), ("  max_latency: 1us\n", "max_latency 0.001ms")],
)
def test_a_challenger_over_a_limit_is_rejected(
    sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics, limit: str, message: str
) -> None:
    loop = ModelLoop(_policy(), sqlite_registry, metrics)
    loop.cycle(clock.now())  # v1 without limits
    loop.update_policy(_policy(**{PROMOTE: PROMOTE + limit}))
    clock.set(demo.DRIFT_AT + timedelta(hours=2))
    run = loop.optimize(clock.now(), trigger="manual")
    assert run.outcome == "rejected" and message in run.reason
    assert sqlite_registry.model(loop.name).champion_version == 1


def test_a_step_over_its_budget_fails_the_run(
    sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    policy = _policy(
        **{"pipeline: [retrain, validate]": "pipeline: [{retrain: {budget: 1us}}, validate]"}
    )
    run = ModelLoop(policy, sqlite_registry, metrics).optimize(clock.now(), trigger="manual")
    assert run.outcome == "failed" and "over its budget of 0.001ms" in run.reason
    assert sqlite_registry.model(policy.model).champion_version is None


def test_the_guard_rolls_back_a_champion_that_does_worse_live(
    sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    policy = _policy(
        **{
            PROMOTE: PROMOTE + "  rollback: {drop: 0.02, within: 6h, min_labels: 150}\n",
            # slower triggers, so the guard (which needs labels) acts before a retrain does
            "{above: 0.3, for: 2}": "{above: 0.3, for: 3}",
            "below: 0.45": "below: 0.1",
        }
    )
    loop = ModelLoop(policy, sqlite_registry, metrics)
    _run(loop, clock, hours=7)  # through the drift: a post-drift champion is in force
    name = policy.model
    good = sqlite_registry.model(name).champion_version
    assert good >= 2
    # An operator promotes the stale pre-drift v1 by mistake.
    sqlite_registry.promote(name, 1, at=clock.now(), reason="operator mistake")
    _run(loop, clock, hours=3)
    rollbacks = [e for e in sqlite_registry.events(name) if e.kind == "rollback"]
    assert rollbacks and rollbacks[0].to_version == good and rollbacks[0].from_version == 1
    assert "guard: champion v1" in rollbacks[0].reason
    guarded = [c for c in sqlite_registry.checks(name, 100) if "guard" in (c.signals or {})]
    assert guarded and guarded[-1].signals["guard"]["drop"] > 0.02
