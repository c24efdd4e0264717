"""Plugin registries: lookup with did-you-mean, entry points, and a toy family and step added
from this test module alone and run by a policy, as a third-party plugin would be."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reoptd.data import DemoSource, demo
from reoptd.errors import PolicyError
from reoptd.optimize import run_pipeline
from reoptd.plugins import (
    FAMILIES,
    STEPS,
    ModelFamily,
    PluginRegistry,
    StepPlugin,
    UnknownPlugin,
)
from reoptd.policy import parse_policy
from reoptd.settings import DEMO_POLICY

# -- a toy family: predicts the most frequent class it saw ---------------------------------------


class Majority:
    family = "majority"

    def __init__(self, features: list[str]) -> None:
        self.features = features
        self.label: Any = None
        self.params: dict[str, Any] = {}

    def fit(self, frame: pd.DataFrame, target: pd.Series) -> Majority:
        self.label = target.mode().iloc[0]
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self.label)

    def predict_score(self, frame: pd.DataFrame) -> np.ndarray | None:
        return None

    def to_bytes(self) -> bytes:
        return b"MAJORITY\n" + repr(self.label).encode()


MAJORITY = ModelFamily(
    name="majority",
    description="the most frequent class",
    build=lambda policy, params: Majority(policy.features.all),
    load=lambda data: Majority([]),
    magic=b"MAJORITY\n",
    params=(),
    estimators=("",),
    learner="majority",
)


# -- a toy step: counts the challenger's training rows per class -----------------------------------


class CountClasses:
    name = "count_classes"

    def run(self, ctx: Any) -> dict[str, Any]:
        counts = ctx.train[ctx.policy.target].value_counts()
        return {"classes": {str(k): int(v) for k, v in counts.items()}}


COUNT = StepPlugin(
    name="count_classes",
    description="counts the training rows per class",
    create=CountClasses,
    check=lambda policy: (
        []
        if policy.steps.index("count_classes") > policy.steps.index("retrain")
        else ["pipeline: `count_classes` must come after `retrain`"]
    ),
)


@pytest.fixture
def toys() -> Iterator[None]:
    FAMILIES.register(MAJORITY)
    STEPS.register(COUNT)
    yield
    FAMILIES.unregister("majority")
    STEPS.unregister("count_classes")


def _policy(train: str, pipeline: str) -> str:
    text = DEMO_POLICY.read_text()
    head = text.split("\ntrain:")[0].split("\npipeline:")[0]
    return f"{head}\npipeline: {pipeline}\ntrain: {train}\n"


def test_a_family_and_a_step_added_from_a_test_module_run_in_a_policy(toys: None) -> None:
    policy = parse_policy(
        _policy("{family: majority, window: 2h, min_rows: 100}", "[retrain, count_classes]")
    )
    now = demo.START + timedelta(hours=2)
    source = DemoSource(label_delay=timedelta(0))
    result = run_pipeline(policy, source, None, now)
    assert isinstance(result.ctx.challenger, Majority)
    assert result.steps["retrain"]["estimator"] == "majority"
    classes = result.steps["count_classes"]["classes"]
    assert sum(classes.values()) == result.steps["retrain"]["rows"]
    assert result.ctx.promote  # no validate step: promoted unvalidated


def test_the_policy_checks_a_plugin_step_and_family(toys: None) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(_policy("{family: majority}", "[count_classes, retrain]"))
    assert "`count_classes` must come after `retrain`" in str(info.value)
    with pytest.raises(PolicyError) as info:
        parse_policy(_policy("{family: majority, params: {depth: 2}}", "[retrain]"))
    assert "family majority has no parameter 'depth'" in str(info.value)


def test_unknown_plugin_names_say_what_exists(toys: None) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(_policy("{family: majorty}", "[retrain]"))
    message = str(info.value)
    assert "train.family" in message and "did you mean `majority`?" in message
    assert "choose from sklearn, torch, majority" in message  # built-ins first, in order
    with pytest.raises(PolicyError) as info:
        parse_policy(_policy("{family: majority}", "[retrain, count_clases]"))
    assert "unknown step `count_clases` — did you mean `count_classes`?" in str(info.value)
    with pytest.raises(UnknownPlugin, match="did you mean `torch`"):
        FAMILIES.get("torhc")


def test_third_party_plugins_register_through_entry_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry: PluginRegistry[StepPlugin] = PluginRegistry("step", "reoptd.test_steps")

    class EntryPoint:
        name = "count_classes"

        def load(self) -> None:  # importing a plugin's module registers it
            registry.register(COUNT)

    seen: list[str] = []

    def entry_points(group: str) -> list[EntryPoint]:
        seen.append(group)
        return [EntryPoint()]

    monkeypatch.setattr("reoptd.plugins.entry_points", entry_points)
    assert registry.names() == ("count_classes",)
    assert seen == ["reoptd.test_steps"]
    with pytest.raises(ValueError, match="registered already"):
        registry.register(StepPlugin("count_classes", "another", CountClasses))


def test_validating_a_policy_imports_no_heavy_library() -> None:
    """``policy validate`` reads every built-in plugin's declaration, never its implementation."""
    code = (
        "import sys, reoptd.policy as p;"
        " policy = p.load_policy('policies/torch-mlp.yaml');"
        " policy.model_json_schema();"
        " print(sorted(m for m in ('torch', 'evidently', 'sklearn', 'optuna')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="."
    )
    assert out.stdout.strip() == "[]", out.stderr
