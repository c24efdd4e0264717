"""Promotion modes seen from outside, on the demo stream under a simulated clock: a shadow
challenger promoted after winning live checks, an operator's bad promotion through the API rolled
back by the guard; each change visible in the API, counted in metrics, and sent as a webhook."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from _receiver import SECRET, Receiver
from _served import TOKEN

from reoptd.api import ApiServer, create_app
from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.metrics import Metrics
from reoptd.policy import parse_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store.sql import SqlStore
from reoptd.webhooks import WebhookNotifier, verify

PROMOTE = "  min_improvement: 0.005\n"


def _run_until(loop: ModelLoop, clock: SimulatedClock, hours: float, done) -> None:
    """Cycles every monitor.every until ``done()`` (checked after each), at most ``hours``."""
    end = clock.now() + timedelta(hours=hours)
    while clock.now() < end:
        loop.cycle(clock.now())
        clock.advance(loop.policy.monitor.every)
        if done():
            return


@pytest.mark.slow
def test_shadow_promotion_and_guard_rollback_through_the_api(tmp_path: Path) -> None:
    text = DEMO_POLICY.read_text()
    for old, new in {
        PROMOTE: PROMOTE
        + "  mode: shadow\n  shadow_checks: 2\n"
        + "  rollback: {drop: 0.02, within: 6h, min_labels: 150}\n",
        "below: 0.45": "below: 0.1",  # drift triggers only, so the guard acts before a retrain
    }.items():
        assert old in text
        text = text.replace(old, new)
    policy = parse_policy(text, "shadow.yaml")
    name = policy.model
    registry = SqlStore(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "artifacts")
    clock = SimulatedClock(demo.DRIFT_AT - timedelta(hours=1))  # v1 learns the pre-drift rows
    metrics = Metrics()
    metrics.watch_champions(registry, clock)
    receiver = Receiver()
    notifier = WebhookNotifier([receiver.url], SECRET, backoff=0.05)
    registry.listeners.append(notifier)
    server = ApiServer(create_app(registry, [policy], clock, token=TOKEN), "127.0.0.1", 0)
    server.start()
    http = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    try:
        loop = ModelLoop(policy, registry, metrics)
        events = lambda: registry.events(name)  # noqa: E731
        # Through the drift: a challenger goes to shadow, then wins live checks.
        _run_until(loop, clock, 10, lambda: any(e.reason.startswith("shadow v") for e in events()))
        detail = http.get(f"/models/{name}").json()
        shadow_wins = [e for e in detail["events"] if e["reason"].startswith("shadow v")]
        assert shadow_wins, detail["events"]
        good = detail["champion_version"]
        assert good >= 2 and detail["mode"] == "shadow"
        judged = [
            c["signals"]["shadow"]
            for c in http.get(f"/models/{name}/checks?limit=100").json()
            if "shadow" in c["signals"]
        ]
        wins = [j for j in judged if j["version"] == shadow_wins[0]["to_version"]]
        assert len(wins) >= 2 and all(j["better"] and j["rows"] >= 30 for j in wins)

        # An operator promotes the stale pre-drift v1 through the API by mistake.
        mistake = http.post(f"/models/{name}/promote", json={"version": 1, "reason": "oops"})
        assert mistake.status_code == 200 and mistake.json()["from_version"] == good
        _run_until(loop, clock, 3, lambda: events()[-1].kind == "rollback")

        events = http.get(f"/models/{name}").json()["events"]
        rollback = events[-1]
        assert (rollback["kind"], rollback["from_version"], rollback["to_version"]) == (
            "rollback",
            1,
            good,
        )
        assert rollback["reason"].startswith("guard: champion v1")
        assert http.get(f"/models/{name}/champion").json()["version"] == good
        sample = metrics.registry.get_sample_value
        assert sample("reoptd_rollbacks_total", {"model": name}) == 1
        assert sample("reoptd_promotions_total", {"model": name}) == len(events) - 1
        notifier.close()
        sent = [json.loads(body) for _h, body, _s in receiver.requests]
        assert all(verify(SECRET, b, h["X-Reoptd-Signature"]) for h, b, _s in receiver.requests)
        assert [(e["event"], e["to_version"]) for e in sent] == [
            ("promotion" if e["kind"] == "promote" else "rollback", e["to_version"]) for e in events
        ]
        assert sent[-1]["reason"] == rollback["reason"]
    finally:
        http.close()
        server.stop()
        receiver.close()
        registry.close()
