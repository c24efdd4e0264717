"""Warm starts from the champion (``train.warm_start``): torch fine-tuning with new categories,
sklearn continuation, the holdout choosing in ``auto``, refusals named, the run recording it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from reoptd.cli import app
from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.errors import OptimizeError
from reoptd.metrics import Metrics
from reoptd.models import build_model
from reoptd.monitor import Champion
from reoptd.optimize._base import RunContext
from reoptd.optimize._retrain import Retrain
from reoptd.policy import Policy, parse_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import Store

POLICY = """
version: 1
model: warm
task: classification
target: y
timestamp: ts
features: {{numerical: [x1, x2], categorical: [c]}}
data: {{production: {{kind: files, path: unused}}}}
train:
  {train}
  warm_start: {mode}
  min_rows: 50
"""
TORCH = "family: torch\n  params: {hidden: [16], epochs: 20, patience: 3, batch_size: 64}"
HGB = (
    "estimator: sklearn.ensemble.HistGradientBoostingClassifier\n"
    "  params: {max_iter: 20, early_stopping: false, random_state: 0}"
)


def _policy(train: str, mode: str = "auto") -> Policy:
    return parse_policy(POLICY.format(train=train, mode=mode), "warm.yaml")


def _rows(seed: int, n: int = 600, categories: tuple[str, ...] = ("a", "b")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    c = rng.choice(list(categories), n)
    logit = x[:, 0] - x[:, 1] + np.where(c == "a", 1.0, np.where(c == "z", 2.0, -1.0))
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * logit))).astype(int)
    ts = pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC") + timedelta(days=seed)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "c": c, "y": y, "ts": ts})


def _ctx(policy: Policy, frame: pd.DataFrame, champion: object | None) -> RunContext:
    cut = len(frame) * 4 // 5
    return RunContext(
        policy=policy,
        now=datetime.now(UTC),
        train=frame.iloc[:cut],
        holdout=frame.iloc[cut:],
        champion=None if champion is None else Champion(1, champion, frame.iloc[:0]),  # type: ignore[arg-type]
    )


def _champion(policy: Policy, frame: pd.DataFrame):
    return build_model(policy).fit(frame, frame["y"])


def test_auto_trains_both_and_the_holdout_decides_torch() -> None:
    policy = _policy(TORCH)
    champion = _champion(policy, _rows(0))
    ctx = _ctx(policy, _rows(1), champion)
    record = Retrain().run(ctx)
    warm, scratch = record["candidates"]["warm"], record["candidates"]["scratch"]
    assert warm["seconds"] > 0 and scratch["seconds"] > 0
    better = "warm" if warm["f1"] >= scratch["f1"] else "scratch"
    assert record["chosen"] == better and ctx.recipe["warm"] == (better == "warm")
    assert "holdout f1" in record["reason"]
    # the warm candidate is the champion's architecture, fine-tuned at the lower rate
    if better == "warm":
        assert ctx.challenger.params["lr"] == pytest.approx(champion.params["lr"] * 0.3)
        assert ctx.challenger.params["epochs"] == 6  # ceil(20 x 0.3)


def test_torch_warm_start_adds_new_categories_as_zero_inputs() -> None:
    policy = _policy(TORCH, "always")
    champion = _champion(policy, _rows(0))
    before = champion.net[0].weight.detach().clone()
    new = _rows(1, categories=("a", "b", "z"))  # `z` is a category the champion never saw
    model = build_model(policy)
    seen: list[np.ndarray] = []

    def first_epoch(epoch: int, fitted: object) -> None:
        seen.append(fitted.net[0].weight.detach().clone().numpy())

    model.fit_warm(new, new["y"], champion, lr_factor=1e-9, budget=0.05, on_epoch=first_epoch)
    assert model.categories == [["a", "b", "z"]]
    assert model.net[0].in_features == champion.net[0].in_features + 1
    # at a negligible learning rate the old inputs keep their weights and the new one stays ~0
    np.testing.assert_allclose(seen[0][:, :4], before.numpy(), atol=1e-5)
    np.testing.assert_allclose(seen[0][:, 4], 0.0, atol=1e-5)
    # and the champion itself is untouched
    assert torch_equal(champion.net[0].weight, before)
    restored = type(model).from_bytes(model.to_bytes())
    z_rows = new[new["c"] == "z"].head(20)
    np.testing.assert_array_equal(restored.predict(z_rows), model.predict(z_rows))


def torch_equal(a: object, b: object) -> bool:
    import torch

    return bool(torch.equal(a, b))  # type: ignore[arg-type]


def test_a_class_the_champion_never_saw_falls_back_to_scratch() -> None:
    policy = _policy(TORCH, "always")
    champion = _champion(policy, _rows(0))
    new = _rows(1)
    new.loc[new.index[:50], "y"] = 2  # a third class
    ctx = _ctx(policy, new, champion)
    record = Retrain().run(ctx)
    assert record["chosen"] == "scratch" and list(record["candidates"]) == ["scratch"]
    assert "class 2 the champion never saw" in record["warm_refused"]


def test_a_quantized_champion_is_refused_with_the_reason() -> None:
    policy = _policy(TORCH)
    champion = _champion(policy, _rows(0))
    champion.arch = {"quantized": "dynamic"}
    champion.compression = ["quantize"]
    problem = build_model(policy).warm_problem(champion)
    assert "int8-quantized (quantize)" in problem
    with pytest.raises(OptimizeError, match="warm start: the champion is int8-quantized"):
        build_model(policy).fit_warm(_rows(1), _rows(1)["y"], champion, lr_factor=0.3, budget=0.3)


def test_never_trains_from_scratch_only() -> None:
    policy = _policy(HGB, "never")
    ctx = _ctx(policy, _rows(1), _champion(policy, _rows(0)))
    record = Retrain().run(ctx)
    assert record["warm_start"] == "never" and list(record["candidates"]) == ["scratch"]
    assert ctx.recipe["warm"] is False


def test_hist_gradient_boosting_continues_with_more_iterations() -> None:
    policy = _policy(HGB, "always")
    champion = _champion(policy, _rows(0))
    ctx = _ctx(policy, _rows(1), champion)
    record = Retrain().run(ctx)
    assert record["chosen"] == "warm" and list(record["candidates"]) == ["warm"]
    est = ctx.challenger.pipeline.named_steps["est"]
    assert est.n_iter_ == 20 + 6  # ceil(20 x 0.3) more boosting iterations, on the new rows
    assert est.warm_start is False  # left as a plain estimator
    assert champion.pipeline.named_steps["est"].n_iter_ == 20  # the champion is a copy's source


def test_random_forest_adds_trees_and_sgd_uses_partial_fit() -> None:
    forest = _policy(
        "estimator: sklearn.ensemble.RandomForestClassifier\n"
        "  params: {n_estimators: 10, random_state: 0}",
        "always",
    )
    ctx = _ctx(forest, _rows(1), _champion(forest, _rows(0)))
    Retrain().run(ctx)
    assert len(ctx.challenger.pipeline.named_steps["est"].estimators_) == 13
    sgd = _policy(
        "estimator: sklearn.linear_model.SGDClassifier\n  params: {random_state: 0}", "always"
    )
    champion = _champion(sgd, _rows(0))
    before = champion.pipeline.named_steps["est"].coef_.copy()
    ctx = _ctx(sgd, _rows(1), champion)
    record = Retrain().run(ctx)
    assert record["chosen"] == "warm"
    after = ctx.challenger.pipeline.named_steps["est"].coef_
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(champion.pipeline.named_steps["est"].coef_, before)


def test_another_estimator_or_family_is_refused() -> None:
    policy = _policy(HGB)
    forest = _policy("estimator: sklearn.ensemble.RandomForestClassifier")
    champion = _champion(forest, _rows(0))
    assert "RandomForestClassifier, not a HistGradientBoostingClassifier" in (
        build_model(policy).warm_problem(champion)
    )
    torch_champion = _champion(_policy(TORCH), _rows(0))
    assert "not a scikit-learn pipeline" in build_model(policy).warm_problem(torch_champion)
    assert "not a torch MLP" in build_model(_policy(TORCH)).warm_problem(champion)


def test_the_daemon_records_the_choice_and_models_show_prints_it(
    sqlite_registry: Store, tmp_path: Path
) -> None:
    policy = parse_policy(DEMO_POLICY.read_text(), "demo.yaml")
    loop = ModelLoop(policy, sqlite_registry, Metrics())
    after = demo.START + timedelta(hours=6)
    first = loop.optimize(after, trigger="bootstrap")
    assert first.steps["retrain"]["warm_refused"] == "no champion yet"
    second = loop.optimize(after + timedelta(hours=2), trigger="manual")
    retrain = second.steps["retrain"]
    assert set(retrain["candidates"]) == {"warm", "scratch"} and retrain["chosen"] in {
        "warm",
        "scratch",
    }
    stored = {r.challenger_version: r for r in sqlite_registry.runs(policy.model)}
    assert stored[2].steps["retrain"]["chosen"] == retrain["chosen"]
    result = CliRunner().invoke(
        app, ["models", "show", policy.model], env={"REOPTD_HOME": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    how = "warm-started" if retrain["chosen"] == "warm" else "trained from scratch"
    assert f"v2 train: {how}, warm_start auto; warm " in result.output
    assert "v1 train: trained from scratch, warm_start auto; scratch" in result.output
    assert "(no warm start: no champion yet)" in result.output


def test_a_float_compressed_champion_is_fine_tuned_in_its_own_shape() -> None:
    from reoptd.models.torch import describe, low_rank_module

    policy = _policy(
        "family: torch\n  params: {hidden: [16], dropout: 0.0, epochs: 10, batch_size: 64}"
    )
    champion = _champion(policy, _rows(0))
    champion.net[0] = low_rank_module(champion.net[0].in_features, 3, 16)  # as low_rank leaves it
    champion.arch, champion.compression = describe(champion.net), ["low_rank"]
    new = _rows(1, categories=("a", "b", "z"))
    model = build_model(policy).fit_warm(new, new["y"], champion, lr_factor=0.3, budget=0.3)
    assert model.arch is not None and model.arch["inputs"] == model.arch["layers"][0]["in"] == 5
    assert champion.arch["inputs"] == 4 and model.compression == ["low_rank"]
    restored = type(model).from_bytes(model.to_bytes())
    np.testing.assert_array_equal(restored.predict(new), model.predict(new))
