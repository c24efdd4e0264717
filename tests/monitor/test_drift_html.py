"""`reoptd check MODEL --html OUT.html` writes Evidently's drift report for the policy's columns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reoptd.errors import DataError
from reoptd.monitor._html import write_drift_html
from reoptd.policy import Policy

REOPTD = str(Path(sys.executable).parent / "reoptd")


@pytest.mark.slow
def test_check_writes_evidently_html_for_the_policy_columns(
    tmp_path: Path, demo_policy: Policy
) -> None:
    env = {**os.environ, "REOPTD_HOME": str(tmp_path / "home")}
    out = tmp_path / "reports" / "drift.html"
    done = subprocess.run(
        [REOPTD, "check", "demo_churn", "--html", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote Evidently's drift report for demo_churn to {out}" in done.stdout
    html = out.read_text()
    assert "Dataset Drift" in html and "Drifted Columns" in html  # Evidently's preset widgets
    for column in demo_policy.features.all:
        assert column in html
    # the policy's methods, not Evidently's automatic choice
    assert "Wasserstein distance (normed)" in html and "Jensen-Shannon distance" in html
    # titled with the model, the champion's version and the window; the dataset threshold is
    # the policy's drift_share trigger (0.3), not monitor.drift.drift_share (0.5)
    assert "<h1" in html and "Drift of demo_churn v1, window 2026-01-0" in html
    assert "dataset drift when 30% of features drift" in html


def test_a_column_missing_from_the_window_is_named(tmp_path: Path, demo_policy: Policy) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "tenure": rng.normal(size=50),
            "monthly_charges": rng.normal(size=50),
            "support_calls": rng.normal(size=50),
            "contract": rng.choice(["a", "b"], 50),
            "payment_method": rng.choice(["a", "b"], 50),
        }
    )
    with pytest.raises(DataError, match="column\\(s\\) contract missing"):
        write_drift_html(demo_policy, frame, frame.drop(columns=["contract"]), tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_the_report_uses_the_triggers_drift_share_and_names_what_it_shows(
    demo_policy: Policy,
) -> None:
    from datetime import UTC, datetime

    from reoptd.monitor._html import drift_preset, report_title

    assert demo_policy.monitor.drift.drift_share == 0.5
    assert drift_preset(demo_policy).drift_share == 0.3  # the drift_share trigger's `above`
    title = report_title(
        demo_policy,
        3,
        (datetime(2026, 3, 14, 10, tzinfo=UTC), datetime(2026, 3, 14, 12, tzinfo=UTC)),
    )
    assert title.startswith("Drift of demo_churn v3, window 2026-03-14 10:00 to 12:00 UTC")
