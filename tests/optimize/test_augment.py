"""The augment step: rebalancing (imbalanced-learn) and torch noise/mixup as candidates, judged on
the untouched holdout, kept only if they win; resampled rows keep their time order."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from reoptd.errors import PolicyError
from reoptd.models import build_model
from reoptd.monitor import evaluate
from reoptd.optimize._augment import Augment, resample
from reoptd.optimize._base import RunContext
from reoptd.optimize._retrain import Retrain
from reoptd.policy import Policy, parse_policy

POLICY = """
version: 1
model: aug
task: {task}
target: y
timestamp: ts
features: {{numerical: [x1, x2], categorical: [c]}}
data: {{production: {{kind: files, path: unused}}}}
pipeline: {pipeline}
train:
  {train}
  warm_start: never
  min_rows: 50
{augment}
"""
HGB = (
    "estimator: sklearn.ensemble.HistGradientBoostingClassifier\n"
    "  params: {max_iter: 20, early_stopping: false, random_state: 0}"
)
TORCH = "family: torch\n  params: {hidden: [16], epochs: 8, patience: 0, batch_size: 64}"


def _policy(
    train: str = HGB,
    augment: str = "",
    pipeline: str = "[retrain, augment, validate]",
    task: str = "classification",
) -> Policy:
    text = POLICY.format(train=train, augment=augment, pipeline=pipeline, task=task)
    return parse_policy(text, "aug.yaml")


def _rows(seed: int = 0, n: int = 800) -> pd.DataFrame:
    """About 12% positives."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    c = rng.choice(["a", "b", "c"], n)
    logit = 1.5 * x[:, 0] + x[:, 1] - 2.5 + (c == "a")
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * logit))).astype(int)
    ts = pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC")
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "c": c, "y": y, "ts": ts})


def _ctx(policy: Policy, frame: pd.DataFrame) -> RunContext:
    cut = len(frame) * 3 // 4
    return RunContext(
        policy=policy,
        now=datetime.now(UTC),
        train=frame.iloc[:cut],
        holdout=frame.iloc[cut:],
        champion=None,
    )


def test_resampling_balances_the_classes_and_keeps_time_order() -> None:
    policy = _policy()
    frame = _rows()
    counts = frame["y"].value_counts()
    over = resample(policy, frame, "random_over")
    assert (over["y"].value_counts() == counts.max()).all()
    assert over["ts"].is_monotonic_increasing
    under = resample(policy, frame, "random_under")
    assert (under["y"].value_counts() == counts.min()).all()
    assert set(under["ts"]) <= set(frame["ts"])
    smote = resample(policy, frame, "smote")
    assert (smote["y"].value_counts() == counts.max()).all()
    assert smote["ts"].is_monotonic_increasing and smote["ts"].notna().all()
    assert set(smote["c"]) == {"a", "b", "c"}  # SMOTE-NC: categories stay categories
    # a synthetic row takes the timestamp of a training row of its own class
    positive_times = set(frame.loc[frame["y"] == 1, "ts"])
    added = smote[smote["y"] == 1]
    assert set(added["ts"]) <= positive_times


def test_each_option_is_judged_on_the_untouched_holdout_and_kept_only_if_it_wins() -> None:
    policy = _policy(augment="augment: {methods: [random_over, random_under, smote]}")
    ctx = _ctx(policy, _rows())
    holdout = ctx.holdout.copy()
    Retrain().run(ctx)
    plain = ctx.challenger
    record = Augment().run(ctx)
    pd.testing.assert_frame_equal(ctx.holdout, holdout)  # never augmented
    candidates = record["candidates"]
    assert record["tried"] == ["random_over", "random_under", "smote"]
    assert set(candidates) == {"none", "random_over", "random_under", "smote"}
    assert candidates["random_over"]["rows"] > len(ctx.train) > candidates["random_under"]["rows"]
    scores = {name: c["f1"] for name, c in candidates.items()}
    best = max(scores, key=lambda name: (scores[name], name == "none"))
    if scores[best] > scores["none"]:
        assert record["chosen"] == best and ctx.recipe["augment"]["method"] == best
        assert ctx.challenger is not plain
    else:
        assert record["chosen"] == "none" and ctx.challenger is plain
    score = evaluate(ctx.challenger, ctx.holdout, "y", ["f1"], None)["f1"]
    assert score == pytest.approx(scores[record["chosen"]])


def test_an_option_that_cannot_run_is_recorded_not_fatal() -> None:
    policy = _policy(augment="augment: {methods: [smote], k_neighbors: 500}")
    ctx = _ctx(policy, _rows())
    Retrain().run(ctx)
    record = Augment().run(ctx)
    assert "error" in record["candidates"]["smote"] and record["chosen"] == "none"


def test_torch_noise_and_mixup_change_training() -> None:
    policy = _policy(TORCH)
    frame = _rows()
    plain = build_model(policy).fit(frame, frame["y"])
    for augmentation in ({"noise": 0.5}, {"mixup": 0.2}):
        model = build_model(policy)
        model.augmentation = augmentation
        model.fit(frame, frame["y"])
        assert not np.allclose(
            model.net[0].weight.detach().numpy(), plain.net[0].weight.detach().numpy()
        ), augmentation
    again = build_model(policy)
    again.augmentation = {"mixup": 0.2}
    again.fit(frame, frame["y"])  # seeded: the same model again
    np.testing.assert_array_equal(again.predict(frame), model.predict(frame))


def test_torch_default_options_include_noise_and_mixup() -> None:
    policy = _policy(TORCH)
    ctx = _ctx(policy, _rows())
    Retrain().run(ctx)
    record = Augment().run(ctx)
    assert record["tried"] == ["random_over", "random_under", "smote", "noise", "mixup"]
    assert all("f1" in c or "error" in c for c in record["candidates"].values())


def test_a_later_tune_step_trains_with_the_kept_option() -> None:
    from reoptd.optimize._tune import Tune

    policy = _policy(
        augment="augment: {methods: [random_over]}\ntune: {trials: 2, pruner: none}",
        pipeline="[retrain, augment, tune, validate]",
    )
    ctx = _ctx(policy, _rows())
    Retrain().run(ctx)
    ctx.recipe["augment"] = {"method": "random_over", "value": 1}  # as if it had won
    record = Tune().run(ctx)
    assert record["final_fit"]["chosen"] == "scratch"
    balanced = resample(policy, ctx.train, "random_over")
    assert record["final_fit"]["fit_rows"] == len(balanced) > len(ctx.train)
    assert ctx.recipe["augment"]["method"] == "random_over"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pipeline": "[augment, retrain, validate]"}, "`augment` must come after `retrain`"),
        ({"pipeline": "[retrain, validate, augment]"}, "`augment` must come before `validate`"),
        ({"augment": "augment: {methods: [noise]}"}, "family torch only"),
        (
            {"task": "regression", "train": "estimator: sklearn.linear_model.Ridge"},
            "no option applies to a regression model of family sklearn",
        ),
    ],
)
def test_the_policy_check_names_misplaced_or_inapplicable_options(
    kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        _policy(**kwargs)
