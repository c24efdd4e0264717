"""One policy watcher serves the loops and the API: an edited policy file applies to both."""

from __future__ import annotations

import os
from pathlib import Path

from _served import MODEL, api_policy, serve

from reoptd.cycle import ModelLoop, PolicyWatcher
from reoptd.metrics import Metrics
from reoptd.policy import load_policy
from reoptd.settings import DEMO_POLICY

FEATURES = "numerical: [tenure, monthly_charges, support_calls]"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))
    stat = path.stat()  # two writes within one mtime tick: make the change visible
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def _row(request_id: str) -> dict:
    return {
        "request_id": request_id,
        "ts": "2026-01-02T05:00:00Z",
        "tenure": 12,
        "monthly_charges": 70.5,
        "support_calls": 1,
        "contract": "one-year",
        "payment_method": "credit-card",
    }


def test_the_api_validates_ingested_rows_against_the_reloaded_policy(
    api_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "api.yaml"
    text = DEMO_POLICY.read_text()
    path.write_text(text.replace("production: {kind: demo, seed: 7}", "production: {kind: api}"))
    assert load_policy(path).model == api_policy().model
    metrics = Metrics()
    watcher = PolicyWatcher([load_policy(path)], metrics)
    with serve(api_template, tmp_path / "home", policies=watcher) as served:  # type: ignore[arg-type]  # the daemon passes its watcher
        loop = ModelLoop(watcher.policy(MODEL), served.registry, metrics, watcher=watcher)
        loop.start()
        with served.client() as http:
            accepted = http.post(f"/ingest/{MODEL}/predictions", json=[_row("r1")])
            assert accepted.status_code == 200, accepted.text
            # the operator adds a feature: rows without it no longer fit the policy
            _edit(path, FEATURES, FEATURES.replace("]", ", discount]"))
            refused = http.post(f"/ingest/{MODEL}/predictions", json=[_row("r2")])
        assert refused.status_code == 422, refused.text
        assert any(p["column"] == "discount" for p in refused.json()["problems"])
        # the loop runs the very policy the API validated with, reloaded once
        assert loop.reload_if_changed() is True
        assert loop.policy is watcher.policy(MODEL)
        assert "discount" in loop.policy.features.numerical
        assert loop.reload_if_changed() is False


def test_an_invalid_edit_keeps_the_policy_for_every_reader(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(DEMO_POLICY.read_text())
    metrics = Metrics()
    policy = load_policy(path)
    watcher = PolicyWatcher([policy], metrics)
    watcher.start()
    _edit(path, "cooldown: 1h", "coldown: 1h")
    assert watcher.refresh(policy.model) is policy
    valid = metrics.registry.get_sample_value("reoptd_policy_valid", {"model": policy.model})
    assert valid == 0
    _edit(path, "coldown: 1h", "cooldown: 2h")
    reloaded = watcher.refresh(policy.model)
    assert reloaded is not policy and watcher.policy(policy.model) is reloaded
    valid = metrics.registry.get_sample_value("reoptd_policy_valid", {"model": policy.model})
    assert valid == 1
