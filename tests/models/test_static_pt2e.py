"""Static int8 by torchao's PT2E flow: a real torch MLP of the family quantized, stored in the
artifact store, and loaded back in a fresh process (no calibration, no torchao there), its
outputs within tolerance of the float model's; and its ONNX Q/DQ form."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _torch_demo import TEST, TEST_END, TEST_START, TRAIN, fit_teacher, torch_policy
from torch import nn

from reoptd.clock import SimulatedClock
from reoptd.data import demo
from reoptd.models import TORCH_MAGIC, OnnxModel, load_model
from reoptd.models.torch import Int8Linear, StaticInt8, TorchMLP, quantizer, reference_arithmetic
from reoptd.optimize import compress as C
from reoptd.policy import Policy
from reoptd.store import Store

TRAIN_POLICY = (
    "train: {family: torch, params: {epochs: 10, hidden: [64, 64]}, window: 2h, min_rows: 300}\n"
)


def _policy() -> Policy:
    return torch_policy(TRAIN_POLICY)


@pytest.fixture(scope="module")
def teacher() -> TorchMLP:
    return fit_teacher(_policy())


@pytest.fixture(scope="module")
def static(teacher: TorchMLP) -> TorchMLP:
    assert StaticInt8().backend == "torchao"  # torchao is installed: PT2E comes first
    return C.static_quantize(teacher, C.calibration_rows(TRAIN, 1024))  # the policy default


def _accuracy(model: TorchMLP) -> float:
    return float((model.predict(TEST) == TEST["churned"].to_numpy()).mean())


def test_pt2e_quantizes_every_linear_to_int8_with_the_teachers_weights(
    teacher: TorchMLP, static: TorchMLP
) -> None:
    assert static.arch is not None
    assert static.arch["quantized"] == "static_int8" and static.arch["backend"] == "torchao"
    assert static.compression == ["static_quantize"]
    assert static.net is not None and teacher.net is not None
    layers = [m for m in static.net if isinstance(m, Int8Linear)]
    floats = [m for m in teacher.net if isinstance(m, nn.Linear)]
    assert len(layers) == len(floats) == 3
    for layer, float_layer in zip(layers, floats, strict=True):
        assert layer.weight.dtype == torch.int8
        # per output channel: int8 x scale is the float weight to within half a step
        dequantized = layer.weight.float() * layer.weight_scale[:, None]
        step = layer.weight_scale[:, None].expand_as(dequantized)
        assert bool(((dequantized - float_layer.weight).abs() <= step / 2 + 1e-6).all())
        assert torch.equal(layer.bias, float_layer.bias.detach())
        scale, zero, low, high = layer.input_qparams.tolist()
        assert scale > 0 and (low, high) == (0, 255) and 0 <= zero <= 255  # calibrated uint8
    # the state dict holds the int8 weights and the numbers, no float copy of the weights
    state = static.net.state_dict()
    weights = {k: v.dtype for k, v in state.items() if k.endswith(".weight")}
    assert set(weights.values()) == {torch.int8}
    assert len(static.to_bytes()) < 0.55 * len(teacher.to_bytes())
    # within tolerance of the float model
    assert np.allclose(static.predict_score(TEST), teacher.predict_score(TEST), atol=0.03)
    assert _accuracy(static) >= _accuracy(teacher) - 0.02


def test_int8_layers_run_on_onednn_kernels_within_rounding_of_the_reference(
    static: TorchMLP,
) -> None:
    assert static.net is not None
    kernels = {m.kernel for m in static.net if isinstance(m, Int8Linear)}
    if kernels != {"onednn"}:
        pytest.skip(f"this torch runs the int8 layers by {kernels}, not oneDNN's kernels")
    x = static._matrix(TEST[static.features])
    with torch.inference_mode():
        onednn = static.net(x)
        with reference_arithmetic(static.net):
            reference = static.net(x)
        # int32 sums and the graph's float arithmetic agree to a rounding step of the logits
        assert 0 < float((onednn - reference).abs().max()) < 1e-2
        # a row's output does not depend on the batch it is in
        assert torch.equal(static.net(x[:1]), onednn[:1])
        assert torch.equal(static.net(x[5:37]), onednn[5:37])


def test_pt2e_artifact_loads_in_a_fresh_process_without_calibration(
    teacher: TorchMLP, static: TorchMLP, sqlite_registry: Store, tmp_path: Path
) -> None:
    policy = _policy()
    clock = SimulatedClock(demo.START)
    sqlite_registry.ensure_model(policy, clock.now())
    data = static.to_bytes()
    # the archive after the magic header is plain tensors and numbers: weights_only loads it
    torch.load(io.BytesIO(data[len(TORCH_MAGIC) :]), weights_only=True)
    version = sqlite_registry.add_version(
        policy.model, model_bytes=data, reference_bytes=b"reference", at=clock.now()
    )
    script = f"""
import json, sys
from datetime import datetime, timedelta
from reoptd.data import demo
from reoptd.models import load_model
from reoptd.store import open_store
store = open_store({f"sqlite:///{tmp_path / 'reoptd.db'}"!r}, {str(tmp_path / "artifacts")!r})
record = store.version({policy.model!r}, {version.version})
model = load_model(store.load_artifact(record))
rows = demo.DemoSource(label_delay=timedelta(0)).read(
    datetime.fromisoformat({TEST_START.isoformat()!r}),
    datetime.fromisoformat({TEST_END.isoformat()!r}),
)
print(json.dumps({{
    "arch": model.arch,
    "layers": [type(m).__name__ for m in model.net],
    "scores": model.predict_score(rows).tolist(),
    "torchao_imported": any(m.split(".")[0] == "torchao" for m in sys.modules),
}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["arch"] == static.arch
    assert loaded["layers"] == ["Int8Linear", "ReLU", "Int8Linear", "ReLU", "Int8Linear"]
    # torchao is not even imported: nothing was calibrated or quantized again
    assert loaded["torchao_imported"] is False
    scores = np.asarray(loaded["scores"])
    assert np.allclose(scores, static.predict_score(TEST), atol=1e-6)
    assert np.allclose(scores, teacher.predict_score(TEST), atol=0.03)


def test_pt2e_chains_after_low_rank_and_reloads_identically(teacher: TorchMLP) -> None:
    chained = C.static_quantize(C.low_rank(teacher, 0.7), TRAIN[:300])
    assert chained.compression == ["low_rank", "static_quantize"]
    assert chained.arch is not None and chained.arch["backend"] == "torchao"
    assert chained.net is not None
    assert all(type(m).__name__ == "Int8Linear" for m in chained.net[0])  # both factors
    loaded = load_model(chained.to_bytes())
    assert isinstance(loaded, TorchMLP)
    assert np.array_equal(loaded.predict_score(TEST), chained.predict_score(TEST))
    with pytest.raises(Exception, match="cannot be compressed further"):
        C.quantize(chained)


def test_pt2e_network_exports_to_an_onnx_qdq_graph_with_int8_weights(static: TorchMLP) -> None:
    import onnx

    onnx_form = C.export_onnx(static)
    graph = onnx.load_from_string(onnx_form.graph)
    ops = [node.op_type for node in graph.graph.node]
    assert ops.count("QuantizeLinear") == 3 and ops.count("Gemm") == 3
    int8 = [i for i in graph.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert sorted(tuple(i.dims) for i in int8 if len(i.dims) == 2) == sorted(
        tuple(m.weight.shape) for m in static.net if isinstance(m, Int8Linear)
    )
    # ONNX Runtime runs the Q/DQ pairs as int8 kernels: it rounds the bias and the requantized
    # sums its own way, so the probabilities differ a little from the Python form's
    difference = C.max_difference(static, onnx_form, TEST)
    assert 0 <= difference < 5e-3
    again = load_model(onnx_form.to_bytes())
    assert isinstance(again, OnnxModel)
    assert np.array_equal(again.predict(TEST), onnx_form.predict(TEST))


def test_the_torch_ao_quantizer_stays_the_fallback(teacher: TorchMLP) -> None:
    fallback = quantizer("static_int8", "torch.ao")
    assert fallback.backend == "torch.ao"
    assert quantizer("static_int8").backend == "torchao"
    assert teacher.net is not None
    net = nn.Sequential(*[m for m in teacher.net if not isinstance(m, nn.Dropout)]).eval()
    quantized = fallback.quantize(net, teacher._matrix(TRAIN[:300][teacher.features]))
    assert type(quantized[1]).__name__ == "LinearReLU"  # torch.ao's eager fused kernel
