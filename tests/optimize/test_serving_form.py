"""The ONNX serving form: exported from torch and sklearn models, equal to the Python form on real
rows (missing values and unseen categories included), chosen by measurement, loaded without code."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from reoptd.data import demo
from reoptd.errors import ArtifactError, OptimizeError
from reoptd.models import OnnxModel, SklearnModel, build_model, load_model, serving_form
from reoptd.models.torch import TorchMLP
from reoptd.optimize import compress as C
from reoptd.policy import Policy, explain, parse_policy
from reoptd.settings import DEMO_POLICY

SOURCE = demo.DemoSource(label_delay=timedelta(0))
TRAIN = SOURCE.read(demo.START - timedelta(hours=2), demo.START + timedelta(hours=1))
TEST = SOURCE.read(demo.START + timedelta(hours=1), demo.START + timedelta(hours=2))
TORCH_TRAIN = (
    "train: {family: torch, params: {epochs: 8, hidden: [48]}, window: 2h, min_rows: 300}\n"
)


def _policy(train: str | None = None, compress: str | None = None) -> Policy:
    text = DEMO_POLICY.read_text()
    if train is not None:
        text = re.sub(r"^train:\n(?:  .*\n)+", train, text, flags=re.M)
    text = text.replace("pipeline: [retrain, validate]", "pipeline: [retrain, compress, validate]")
    if compress is not None:
        text += f"compress: {compress}\n"
    return parse_policy(text, "serving.yaml")


def _odd_rows(frame: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """Rows with missing numerical values and categories never seen in training."""
    odd = frame.head(40).copy()
    odd.loc[odd.index[::3], policy.features.numerical[0]] = np.nan
    odd.loc[odd.index[1::4], policy.features.categorical[0]] = "never-seen"
    return odd


@pytest.fixture(scope="module")
def torch_model() -> TorchMLP:
    model = build_model(_policy(TORCH_TRAIN))
    assert isinstance(model, TorchMLP)
    return model.fit(TRAIN, TRAIN["churned"])


@pytest.fixture(scope="module")
def sklearn_model() -> SklearnModel:
    model = build_model(_policy())
    assert isinstance(model, SklearnModel)
    return model.fit(TRAIN, TRAIN["churned"])


@pytest.mark.parametrize("which", ["torch_model", "sklearn_model"])
def test_the_onnx_form_equals_the_python_form_and_loads_without_code(
    which: str, request: pytest.FixtureRequest
) -> None:
    python = request.getfixturevalue(which)
    onnx = C.export_onnx(python)
    odd = _odd_rows(TEST, _policy())
    for rows in (TEST, odd):
        assert C.max_difference(python, onnx, rows) < 1e-5
        assert np.array_equal(onnx.predict(rows), python.predict(rows))
        assert np.allclose(onnx.predict_score(rows), python.predict_score(rows), atol=1e-5)
    data = onnx.to_bytes()
    assert serving_form(data) == "onnx"
    assert serving_form(python.to_bytes()) == ("torch" if which == "torch_model" else "pickle")
    loaded = load_model(data, allow_pickle=False)  # no pickle in it: nothing refused
    assert isinstance(loaded, OnnxModel)
    assert loaded.source == ("torch" if which == "torch_model" else "sklearn")
    numerical, categorical = loaded.arrays(odd)
    assert np.array_equal(loaded.predict_arrays(numerical, categorical), python.predict(odd))
    assert loaded.to_bytes() == data  # content-addressed: the same form, the same bytes


def test_pickles_are_refused_before_unpickling(sklearn_model: SklearnModel) -> None:
    with pytest.raises(ArtifactError, match="pickle"):
        load_model(sklearn_model.to_bytes(), allow_pickle=False)
    with pytest.raises(ArtifactError, match="not an ONNX serving form"):
        OnnxModel.from_bytes(sklearn_model.to_bytes())


def test_a_quantized_network_has_no_onnx_form(torch_model: TorchMLP) -> None:
    with pytest.raises(C.NotExportable, match="quantized"):
        C.export_onnx(C.quantize(torch_model))


def test_auto_measures_both_forms_and_onnx_serves_only_onnx(torch_model: TorchMLP) -> None:
    compress = "{methods: [distill, quantize], batch_size: 1, repetitions: 10, %s}"
    fit, valid = TRAIN.iloc[: len(TRAIN) * 4 // 5], TRAIN.iloc[len(TRAIN) * 4 // 5 :]
    auto = _policy(TORCH_TRAIN, compress % "serving: auto, distill: {epochs: 3}")
    plan = C.compress_model(torch_model, fit, valid, auto)
    names = {c.name: c for c in plan.candidates}
    assert {"uncompressed@onnx", "distill@onnx"} <= set(names)
    assert names["uncompressed@onnx"].serving == "onnx"
    assert names["uncompressed@onnx"].max_difference < 1e-4
    assert names["uncompressed@onnx"].metric == pytest.approx(names["uncompressed"].metric)
    refused = {e["name"]: e for e in plan.exports if not e["exported"]}
    assert "quantized" in refused["quantize@onnx"]["reason"]
    record = plan.record()
    assert record["serving"] == "auto" and record["chosen_candidate"]["serving"] in (
        "python",
        "onnx",
    )
    # a tolerance no float export meets: no ONNX candidate, and `onnx` cannot serve
    strict = _policy(TORCH_TRAIN, compress % "serving: onnx, serving_tolerance: 1.0e-15")
    with pytest.raises(OptimizeError, match="no ONNX form: outputs differ"):
        C.compress_model(torch_model, fit, valid, strict)
    onnx = _policy(TORCH_TRAIN, compress % "serving: onnx, distill: {epochs: 3}")
    plan = C.compress_model(torch_model, fit, valid, onnx)
    assert plan.chosen.serving == "onnx" and isinstance(plan.chosen.model, OnnxModel)
    assert all(
        c.verdict == "compress.serving is onnx: only ONNX forms are chosen"
        for c in plan.candidates
        if c.serving == "python"
    )
    with pytest.raises(OptimizeError, match="ONNX serving form already"):
        C.compress_model(plan.chosen.model, fit, valid, onnx)


def test_sklearn_champion_compresses_to_its_onnx_form_without_methods_that_apply(
    sklearn_model: SklearnModel,
) -> None:
    policy = _policy(compress="{methods: [distill], distill: {epochs: 2}, serving: onnx}")
    fit, valid = TRAIN.iloc[: len(TRAIN) * 4 // 5], TRAIN.iloc[len(TRAIN) * 4 // 5 :]
    plan = C.compress_model(sklearn_model, fit, valid, policy)
    assert plan.chosen.serving == "onnx"
    assert any(e["name"] == "uncompressed@onnx" and e["exported"] for e in plan.exports)
    python = next(c for c in plan.candidates if c.name == plan.chosen.name.removesuffix("@onnx"))
    assert np.array_equal(plan.chosen.model.predict(TEST), python.model.predict(TEST))


def test_policy_explain_describes_the_serving_form() -> None:
    text = "\n".join(explain(_policy(compress="{serving: auto, serving_tolerance: 0.001}")))
    assert "exported to ONNX" in text and "within 0.001" in text and "serving: auto" in text
    assert "family's own form" in "\n".join(explain(_policy()))


def test_models_show_says_the_serving_form() -> None:
    from reoptd.cli.models import _serving_line

    onnx = {"serving": "onnx", "max_difference": 3.1e-8}
    assert _serving_line(2, onnx) == (
        "  v2 serving: onnx (ONNX Runtime, loads without running code), outputs within 3.1e-08"
        " of the python form on the holdout"
    )
    assert _serving_line(3, {"serving": "python"}) == "  v3 serving: python (the family's own form)"
    assert _serving_line(1, None) is None and _serving_line(1, {"name": "uncompressed"}) is None
