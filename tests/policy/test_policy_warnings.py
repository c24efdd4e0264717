"""Valid policies that cannot work as written get warnings (not errors); explain states them."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from reoptd.cli import app
from reoptd.policy import explain, parse_policy, policy_warnings
from reoptd.settings import DEMO_POLICY


def _policy(**changes):
    data = yaml.safe_load(DEMO_POLICY.read_text())
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        block = data
        for key in path:
            block = block.setdefault(key, {})
        block[last] = value
    return data


def test_a_metric_trigger_whose_labels_arrive_after_the_window_warns() -> None:
    late = parse_policy(yaml.safe_dump(_policy(data__label_delay="3h")))
    (warning,) = policy_warnings(late)
    assert warning.startswith("triggers.1.metric: labels arrive 3h after their rows")
    assert "min_labels 200 is never met" in warning
    assert any(line.startswith("Warning: triggers.1.metric") for line in explain(late))
    # the demo's own 30m delay inside its 2h window is fine
    assert policy_warnings(parse_policy(DEMO_POLICY.read_text())) == []


def test_other_triggers_that_can_never_fire_warn() -> None:
    data = _policy(monitor__every="3h", monitor__estimate=False)
    data["triggers"] += [
        {"drift_share": {"above": 1.0}},
        {"estimated_metric": {"name": "f1", "below": 0.5}},
    ]
    found = policy_warnings(parse_policy(yaml.safe_dump(data)))
    assert any("share of drifted features cannot exceed 1" in w for w in found)
    assert any("monitor.estimate is false" in w for w in found)
    assert any("monitor.every 3h is longer than monitor.window 2h" in w for w in found)


def test_validate_prints_warnings_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "late.yaml"
    path.write_text(yaml.safe_dump(_policy(data__label_delay="1d")))
    done = CliRunner().invoke(app, ["policy", "validate", str(path)])
    assert done.exit_code == 0
    assert "ok (model demo_churn)" in done.stdout
    assert f"{path}: warning: triggers.1.metric: labels arrive 1d" in done.stderr


def test_the_drift_reference_is_a_choice_explain_states() -> None:
    previous = parse_policy(yaml.safe_dump(_policy(monitor__reference="previous_window")))
    assert previous.monitor.reference == "previous_window"
    assert "the 2h just before it (the previous window" in explain(previous)[2]
    fixed = parse_policy(
        yaml.safe_dump(
            _policy(monitor__reference={"fixed": {"start": "2026-01-01", "end": "2026-01-02"}})
        )
    )
    assert "production rows from 2026-01-01 00:00 to 2026-01-02 00:00" in explain(fixed)[2]
    assert (
        "rows of the champion's training data" in explain(parse_policy(DEMO_POLICY.read_text()))[2]
    )
    import pytest

    from reoptd.errors import PolicyError

    with pytest.raises(PolicyError, match="after its `start`"):
        parse_policy(
            yaml.safe_dump(
                _policy(monitor__reference={"fixed": {"start": "2026-01-02", "end": "2026-01-01"}})
            )
        )
