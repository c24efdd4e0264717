"""/metrics stays lean with many models: no ``_created`` twin of every counter child."""

from __future__ import annotations

from prometheus_client import generate_latest

from reoptd.metrics import Metrics
from reoptd.policy import Policy


def test_counters_export_no_created_samples(demo_policy: Policy) -> None:
    metrics = Metrics()
    for index in range(3):
        metrics.declare(demo_policy.model_copy(update={"model": f"m{index}"}))
    metrics.checks.labels("m0", "ok").inc()
    lines = [
        line for line in generate_latest(metrics.registry).decode().splitlines() if line[:1] != "#"
    ]
    assert any(
        line.startswith('reoptd_checks_total{model="m0",outcome="ok"} 1.0') for line in lines
    )
    assert not [line for line in lines if "_created" in line.split("{")[0]]
