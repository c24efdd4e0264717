"""Target drift on a seeded stream whose positive rate jumps at a known time."""

from __future__ import annotations

from datetime import timedelta

from label_streams import START, label_times, policy, stream

from reoptd.data import ReplaySource
from reoptd.models import build_model
from reoptd.monitor import Champion, check

CHANGE = START + timedelta(hours=6)


def _champion(frame):
    p = policy()
    train = frame[frame.ts < START + timedelta(hours=3)]
    return p, Champion(1, build_model(p).fit(train, train["y"]), train)


def test_target_drift_is_flagged_after_the_label_shift_and_not_before() -> None:
    frame = stream("label", change_at=CHANGE, hours=10, seed=11)
    p, champion = _champion(frame)
    source = ReplaySource(frame, "ts", "y", label_times(frame, timedelta(minutes=30)))
    verdicts = {}
    for hours in (4, 5, 6, 8, 9, 10):
        result = check(p, source, champion, START + timedelta(hours=hours))
        drift = result.target_drift
        assert drift is not None
        assert drift.rows == result.labelled_rows == 1080  # 30 minutes still unlabelled
        verdicts[hours] = drift.drifted
    assert verdicts == {4: False, 5: False, 6: False, 8: True, 9: True, 10: True}


def test_no_target_drift_on_a_stream_that_only_moves_its_features() -> None:
    """Features drift (covariate shift) but a model-free test on the labels sees no change when
    the positive rate stays put; and too few labels give no verdict at all."""
    frame = stream("correlation", change_at=CHANGE, hours=10, seed=12)
    p, champion = _champion(frame)
    source = ReplaySource(frame, "ts", "y", label_times(frame, timedelta(minutes=30)))
    for hours in (5, 8, 10):
        result = check(p, source, champion, START + timedelta(hours=hours))
        assert result.target_drift is not None and result.target_drift.drifted is False
    late = ReplaySource(frame, "ts", "y", label_times(frame, timedelta(hours=1, minutes=59)))
    result = check(p, late, champion, START + timedelta(hours=8))
    assert result.labelled_rows == 12 and result.target_drift is None
    assert "target_drift" not in result.signals.to_json()
