"""The torch family: a tabular MLP trained, saved, loaded, tuned and promoted like sklearn."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from sklearn.metrics import r2_score

from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.errors import OptimizeError, PolicyError
from reoptd.metrics import Metrics
from reoptd.models import SklearnModel, build_model, load_model
from reoptd.models.torch import TorchMLP
from reoptd.optimize._spaces import search_space
from reoptd.policy import Policy, parse_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import Store

AFTER_DRIFT = demo.START + timedelta(hours=6)
TORCH_TRAIN = "train: {family: torch, params: {epochs: 20}, window: 2h, min_rows: 300}\n"
SOURCE = demo.DemoSource(label_delay=timedelta(0))
# before the drift: three hours to learn from, the next hour to score on
TRAIN = SOURCE.read(demo.START - timedelta(hours=2), demo.START + timedelta(hours=1))
TEST = SOURCE.read(demo.START + timedelta(hours=1), demo.START + timedelta(hours=2))

REGRESSION = """
version: 1
model: torch_regressor
task: regression
target: y
features:
  numerical: [a, b]
  categorical: [shop]
data:
  production: {kind: demo}
train: {family: torch, params: {epochs: 60, lr: 3e-3}}
"""


def _torch_policy(train: str = TORCH_TRAIN, pipeline: str | None = None) -> Policy:
    text = re.sub(r"^train:\n(?:  .*\n)+", train, DEMO_POLICY.read_text(), flags=re.M)
    if pipeline is not None:
        text = text.replace("pipeline: [retrain, validate]", pipeline)
    return parse_policy(text, "torch.yaml")


def _regression_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, n), rng.uniform(-2, 2, n)
    shop = rng.choice(["north", "south", "east"], n)
    offset = pd.Series(shop).map({"north": 0.0, "south": 2.0, "east": -1.5}).to_numpy()
    y = 3.0 * a - b**2 + offset + rng.normal(0, 0.5, n)
    ts = pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC")
    return pd.DataFrame({"ts": ts, "a": a, "b": b, "shop": shop, "y": y})


@pytest.fixture(scope="module")
def classifier() -> TorchMLP:
    model = build_model(_torch_policy())
    assert isinstance(model, TorchMLP)
    return model.fit(TRAIN, TRAIN["churned"])


def test_the_policy_selects_the_torch_family() -> None:
    policy = _torch_policy()
    assert policy.train.family == "torch" and policy.train.estimator == ""
    assert policy.train.learner == "torch.mlp"
    assert set(search_space(policy)) == {"lr", "dropout", "width", "depth"}


def test_a_classifier_learns_the_demo_stream(classifier: TorchMLP) -> None:
    pred = classifier.predict(TEST)
    assert set(np.unique(pred)) <= {0.0, 1.0} and pred.dtype == TRAIN["churned"].dtype
    assert (pred == TEST["churned"].to_numpy()).mean() > 0.6
    score = classifier.predict_score(TEST)
    assert score is not None and score.shape == (len(TEST),)
    assert ((score >= 0) & (score <= 1)).all()
    assert np.array_equal(score > 0.5, pred == 1.0)
    assert 1 <= classifier.best_epoch <= classifier.epochs_run <= 20


def test_a_regressor_fits_generated_data() -> None:
    policy = parse_policy(REGRESSION, "regression.yaml")
    train, test = _regression_rows(1500, 1), _regression_rows(500, 2)
    model = build_model(policy).fit(train, train["y"])
    assert model.predict_score(test) is None
    assert r2_score(test["y"], model.predict(test)) > 0.5


def test_bytes_round_trip_gives_identical_predictions(classifier: TorchMLP) -> None:
    data = classifier.to_bytes()
    loaded = load_model(data)
    assert isinstance(loaded, TorchMLP)
    assert np.array_equal(loaded.predict(TEST), classifier.predict(TEST))
    assert np.array_equal(loaded.predict_score(TEST), classifier.predict_score(TEST))
    assert loaded.params == classifier.params
    # sklearn artifacts still load through the same entry point
    policy = parse_policy(DEMO_POLICY.read_text(), "demo.yaml")
    sk = build_model(policy, {"max_iter": 5}).fit(TRAIN, TRAIN["churned"])
    assert isinstance(load_model(sk.to_bytes()), SklearnModel)


def test_unseen_categories_encode_as_zeros(classifier: TorchMLP) -> None:
    rows = TEST.head(20).copy()
    rows["contract"] = "three-year"  # never seen in training
    rows["payment_method"] = "crypto"
    x = classifier._matrix(rows).numpy()
    assert np.all(x[:, len(classifier.numerical) :] == 0)
    pred = classifier.predict(rows)
    assert set(np.unique(pred)) <= {0.0, 1.0}
    assert np.isfinite(classifier.predict_score(rows)).all()


def test_the_seed_makes_training_deterministic() -> None:
    policy = _torch_policy()
    rng_before = torch.get_rng_state()
    first = build_model(policy).fit(TRAIN, TRAIN["churned"])
    again = build_model(policy).fit(TRAIN, TRAIN["churned"])
    other = build_model(policy, {"epochs": 20, "seed": 1}).fit(TRAIN, TRAIN["churned"])
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG is left alone
    assert np.array_equal(first.predict_score(TEST), again.predict_score(TEST))
    assert first.to_bytes() == again.to_bytes()
    assert not np.allclose(first.predict_score(TEST), other.predict_score(TEST))
    shuffled = TRAIN.sample(frac=1.0, random_state=3)  # rows are put in time order first
    same = build_model(policy).fit(shuffled, shuffled["churned"])
    assert np.array_equal(first.predict_score(TEST), same.predict_score(TEST))


def test_string_labels_come_back_as_they_were() -> None:
    policy = _torch_policy()
    labels = TRAIN["churned"].map({0.0: "stays", 1.0: "leaves"})
    model = build_model(policy, {"epochs": 3}).fit(TRAIN, labels)
    assert set(model.predict(TEST)) <= {"stays", "leaves"}
    assert model.classes == ["leaves", "stays"]


def test_width_and_depth_set_the_layers_and_bad_params_are_named() -> None:
    policy = _torch_policy()
    model = build_model(policy, {"width": 16, "depth": 3, "lr": "1e-3"})
    assert model.params["hidden"] == [16, 16, 16] and model.params["lr"] == 0.001
    with pytest.raises(OptimizeError, match="dropout"):
        build_model(policy, {"dropout": 1.5})
    with pytest.raises(OptimizeError, match="'layers'"):
        build_model(policy, {"layers": 2})


def test_on_epoch_sees_every_epoch_and_can_stop_training() -> None:
    seen: list[int] = []

    def stop_at_three(epoch: int, model: TorchMLP) -> None:
        seen.append(epoch)
        assert not model.net.training  # type: ignore[union-attr]
        if epoch == 3:
            raise optuna.TrialPruned("stop")

    model = build_model(_torch_policy(), {"epochs": 10, "patience": 0})
    with pytest.raises(optuna.TrialPruned):
        model.fit(TRAIN, TRAIN["churned"], on_epoch=stop_at_three)
    assert seen == [1, 2, 3]


@pytest.mark.parametrize(
    ("train", "says"),
    [
        ("train: {params: {epochs: 3}}\n", "train.estimator: required field is missing"),
        ("train: {family: torch, estimator: sklearn.svm.SVC}\n", "leave `estimator` out"),
        ("train: {family: torch, params: {layers: 2}}\n", "no parameter 'layers'"),
        ("train: {family: keras}\n", "train.family"),
    ],
)
def test_the_schema_checks_the_family(train: str, says: str) -> None:
    with pytest.raises(PolicyError) as info:
        _torch_policy(train)
    assert says in str(info.value)


def test_the_torch_estimator_may_be_named_mlp() -> None:
    assert _torch_policy("train: {family: torch, estimator: mlp}\n").train.estimator == "mlp"


def test_a_torch_policy_is_optimized_and_promoted(sqlite_registry: Store, metrics: Metrics) -> None:
    policy = _torch_policy()
    loop = ModelLoop(policy, sqlite_registry, metrics)
    run = loop.optimize(AFTER_DRIFT, trigger="bootstrap")
    assert run.outcome == "promoted", run.reason
    assert run.challenger_version == 1
    assert run.steps["retrain"]["estimator"] == "torch.mlp"
    version = sqlite_registry.champion(policy.model)
    assert version is not None and version.estimator == "torch.mlp"
    assert version.params["epochs"] == 20 and version.params["hidden"] == [64, 64]
    champion = loop.champion()
    assert isinstance(champion.model, TorchMLP)
    rows = SOURCE.read(AFTER_DRIFT, AFTER_DRIFT + timedelta(minutes=30))
    assert len(champion.model.predict(rows)) == len(rows)


def test_a_torch_policy_is_tuned(sqlite_registry: Store, metrics: Metrics) -> None:
    policy = _torch_policy(pipeline="pipeline: [retrain, tune, validate]\ntune: {trials: 4}")
    run = ModelLoop(policy, sqlite_registry, metrics).optimize(AFTER_DRIFT, trigger="bootstrap")
    assert run.outcome == "promoted", run.reason
    tune = run.steps["tune"]
    assert tune["trials"] == 4
    assert set(tune["best_params"]) == {"lr", "dropout", "width", "depth"}
    study = optuna.load_study(study_name=tune["study"], storage=sqlite_registry.url)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done and all(t.intermediate_values for t in done)  # epochs reported for pruning
    champion = sqlite_registry.champion(policy.model)
    assert champion is not None
    best = tune["best_params"]
    assert champion.params["hidden"] == [best["width"]] * best["depth"]
