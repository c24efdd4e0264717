"""The README's examples run as written: the commands of each regenerated sample
(docs/regenerate.py) succeed in a fresh directory and home, on data the repository produces."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parents[1]


def _regenerate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("regenerate", ROOT / "docs" / "regenerate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


REGENERATE = _regenerate()


def test_every_sample_has_its_block_and_shows_its_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    found = {m["name"]: m["body"] for m in REGENERATE.BLOCK.finditer(readme)}
    assert set(found) == set(REGENERATE.SAMPLES)
    for name, sample in REGENERATE.SAMPLES.items():
        if sample.show is REGENERATE._daemon_run:
            continue
        for command in REGENERATE.shown_commands(sample):
            first = REGENERATE._wrapped(command).splitlines()[0]
            assert f"$ .venv/bin/{first}" in found[name], (name, command)


def test_rewrite_replaces_only_the_named_block() -> None:
    text = "a\n<!-- sample: x -->\n```\nold\n```\n<!-- /sample -->\n<!-- sample: y -->\n```sh\n"
    text += "keep\n```\n<!-- /sample -->\n"
    out = REGENERATE.rewrite(text, "x", "new\n")
    assert "new\n```" in out and "old" not in out and "keep" in out
    with pytest.raises(KeyError):
        REGENERATE.rewrite(text, "z", "")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["backtest", "torch"])
def test_the_readme_example_runs_as_written(tmp_path: Path, name: str) -> None:
    sample = REGENERATE.SAMPLES[name]
    outputs = REGENERATE.run_sample(sample, tmp_path)  # raises on a failing command
    assert len(outputs) == len(sample.commands)
    if name == "torch":  # the compress run found and measured candidates for churn_mlp
        report = json.loads((tmp_path / "compress.json").read_text())
        assert report["model"] == "churn_mlp" and report["outcome"] != "failed"
        assert report["candidates"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "policy", "data"),
    [
        ("demand", "demand-regressor.yaml", "demand.csv"),
        ("fraud", "fraud-shadow.yaml", "f.parquet"),
    ],
)
def test_the_other_examples_run_on_generated_data(
    tmp_path: Path, kind: str, policy: str, data: str
) -> None:
    """docs/example_data.py writes rows the regressor and the fraud examples train on."""
    spec = importlib.util.spec_from_file_location("example_data", ROOT / "docs" / "example_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([kind, str(tmp_path / data)]) == 0
    command = f"reoptd optimize --policy {{root}}/policies/{policy} --data {tmp_path / data}"
    (output,) = REGENERATE.run_sample(REGENERATE.Sample(kind, [command]), tmp_path)
    assert "re-optimization promoted v1" in output
    assert "Discarding nonzero nanoseconds" not in output


@pytest.mark.slow
def test_the_churn_classifier_example_runs_on_a_day_of_the_demo(tmp_path: Path) -> None:
    commands = [
        "reoptd demo export day.parquet --hours 24",
        "reoptd optimize --policy {root}/policies/churn-classifier.yaml --data day.parquet",
    ]
    outputs = REGENERATE.run_sample(REGENERATE.Sample("churn", commands), tmp_path)
    assert "re-optimization promoted v1" in outputs[-1]
