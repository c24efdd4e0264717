"""Re-compression: each method on its own, the measured selection, the compress step and CLI."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from _torch_demo import TEST, TRAIN, fit_teacher, torch_policy
from prometheus_client import CollectorRegistry
from torch import nn

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.errors import PolicyError
from reoptd.metrics import Metrics
from reoptd.models import TORCH_MAGIC, SklearnModel, build_model, load_model
from reoptd.models.torch import TorchMLP, is_low_rank, load_state, low_rank_module
from reoptd.optimize import compress as C
from reoptd.optimize.compress import BASELINE, Candidate, Latency, select
from reoptd.optimize.compress.methods import _low_rank
from reoptd.optimize.compress.methods.quantization import StaticQuantize
from reoptd.policy import Policy, explain, parse_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import Store

AFTER_DRIFT = demo.START + timedelta(hours=6)
TORCH_TRAIN = (
    "train: {family: torch, params: {epochs: 15, hidden: [96, 96]}, window: 2h, min_rows: 300}\n"
)


def _policy(
    train: str = TORCH_TRAIN, pipeline: str | None = None, compress: str | None = None
) -> Policy:
    return torch_policy(train, pipeline, compress)


@pytest.fixture(scope="module")
def teacher() -> TorchMLP:
    return fit_teacher(_policy())


def _linears(model: TorchMLP) -> list[nn.Linear]:
    assert model.net is not None
    return [m for m in model.net.modules() if isinstance(m, nn.Linear)]


def _reloads_identically(model: TorchMLP) -> TorchMLP:
    data = model.to_bytes()
    # the archive after the magic header is loadable with weights_only=True, no pickled code
    with warnings.catch_warnings():  # quantized tensors rebuild through TypedStorage
        warnings.simplefilter("ignore", UserWarning)
        torch.load(io.BytesIO(data[len(TORCH_MAGIC) :]), weights_only=True)
    loaded = load_model(data)
    assert isinstance(loaded, TorchMLP)
    assert np.array_equal(loaded.predict(TEST), model.predict(TEST))
    assert np.array_equal(loaded.predict_score(TEST), model.predict_score(TEST))
    assert loaded.compression == model.compression and loaded.params == model.params
    return loaded


def _accuracy(model) -> float:
    return float((model.predict(TEST) == TEST["churned"].to_numpy()).mean())


def test_structured_pruning_removes_neurons_and_shrinks_the_layers(teacher: TorchMLP) -> None:
    pruned = C.structured_prune(teacher, 0.5, TRAIN, TRAIN["churned"], finetune_epochs=2)
    before, after = _linears(teacher), _linears(pruned)
    assert [(m.in_features, m.out_features) for m in before] == [(10, 96), (96, 96), (96, 2)]
    assert [(m.in_features, m.out_features) for m in after] == [(10, 48), (48, 48), (48, 2)]
    assert pruned.params["hidden"] == [48, 48] and pruned.compression == ["prune"]
    assert pruned.predict_score(TEST).shape == (len(TEST),)
    assert len(pruned.to_bytes()) < 0.5 * len(teacher.to_bytes())
    assert _accuracy(pruned) > _accuracy(teacher) - 0.05
    _reloads_identically(pruned)
    assert _linears(teacher)[0].out_features == 96  # the input model is left alone


def test_magnitude_pruning_zeroes_weights_but_keeps_the_dense_size(teacher: TorchMLP) -> None:
    pruned = C.magnitude_prune(teacher, 0.5)
    for layer in _linears(pruned):
        zeros = float((layer.weight == 0).float().mean())
        assert 0.49 <= zeros <= 0.51
    assert not any(hasattr(m, "weight_mask") for m in pruned.net.modules())  # made permanent
    assert [(m.in_features, m.out_features) for m in _linears(pruned)] == [
        (m.in_features, m.out_features) for m in _linears(teacher)
    ]
    # dense storage: zeros take as many bytes as any weight
    assert len(pruned.to_bytes()) >= 0.95 * len(teacher.to_bytes())
    assert pruned.predict(TEST).shape == (len(TEST),)
    _reloads_identically(pruned)


def test_low_rank_picks_the_rank_by_retained_energy() -> None:
    singular = torch.tensor([10.0, 5.0, 1.0, 0.1])
    energy = singular**2 / (singular**2).sum()  # 0.7930, 0.1982, 0.0079, 0.0001
    assert _low_rank.rank_for(singular, 0.79) == 1
    assert _low_rank.rank_for(singular, float(energy[:2].sum())) == 2
    assert _low_rank.rank_for(singular, 0.995) == 3
    generator = torch.Generator().manual_seed(0)
    layer = nn.Linear(64, 48)
    with torch.no_grad():  # a rank-4 weight: 4 factors carry all of its energy
        a, b = torch.randn(48, 4, generator=generator), torch.randn(4, 64, generator=generator)
        layer.weight.copy_(a @ b)
    module = _low_rank.factorize(layer, 0.999)
    assert is_low_rank(module) and module[0].out_features == 4
    x = torch.randn(7, 64, generator=generator)
    assert torch.allclose(module(x), layer(x), atol=1e-3)
    square = nn.Linear(8, 8)  # full rank: two factors would be bigger, so it stays
    assert _low_rank.factorize(square, 0.999) is square


def test_low_rank_model_is_smaller_and_reloads(teacher: TorchMLP) -> None:
    factored = C.low_rank(teacher, 0.8)
    kinds = [layer["kind"] for layer in factored.arch["layers"]]
    assert "low_rank" in kinds
    assert len(factored.to_bytes()) < len(teacher.to_bytes())
    assert factored.predict(TEST).shape == (len(TEST),)
    close = C.low_rank(teacher, 0.9999)
    assert np.allclose(close.predict_score(TEST), teacher.predict_score(TEST), atol=0.02)
    _reloads_identically(factored)


def test_dynamic_quantization_shrinks_the_weights_and_reloads(teacher: TorchMLP) -> None:
    quantized = C.quantize(teacher)
    assert quantized.arch["quantized"] == "dynamic_int8"
    assert quantized.arch["backend"] == "torchao"  # torchao is installed: it comes first
    linears = [m for m in quantized.net if not isinstance(m, nn.ReLU)]
    assert {type(m.weight).__name__ for m in linears} == {"Int8Tensor"}
    assert len(quantized.to_bytes()) < 0.45 * len(teacher.to_bytes())
    assert np.allclose(quantized.predict_score(TEST), teacher.predict_score(TEST), atol=0.05)
    _reloads_identically(quantized)
    with pytest.raises(Exception, match="cannot be compressed further"):
        C.low_rank(quantized, 0.9)


def test_weight_only_quantization_by_torchao_shrinks_and_reloads(teacher: TorchMLP) -> None:
    quantized = C.weight_only_quantize(teacher)
    assert quantized.arch["quantized"] == "weight_only_int8"
    assert quantized.arch["backend"] == "torchao"
    assert quantized.compression == ["weight_quantize"]
    assert len(quantized.to_bytes()) < 0.45 * len(teacher.to_bytes())
    assert np.allclose(quantized.predict_score(TEST), teacher.predict_score(TEST), atol=0.02)
    _reloads_identically(quantized)


def test_torchao_leaves_narrow_layers_float_so_any_low_rank_network_quantizes() -> None:
    from reoptd.models.torch import describe, quantizer, rebuild

    # a rank-1 factor has a 1-input Linear layer, on which torchao 0.18 fails: it stays float
    net = nn.Sequential(nn.Linear(40, 64), nn.ReLU(), low_rank_module(64, 1, 2)).eval()
    x = torch.randn(5, 40)
    for name in ("dynamic_int8", "weight_only_int8"):
        arch = {**describe(net, quantized=name), "backend": "torchao"}
        quantized = quantizer(name).quantize(net)
        kinds = [type(m.weight).__name__ for m in quantized.modules() if isinstance(m, nn.Linear)]
        assert kinds == ["Int8Tensor", "Int8Tensor", "Parameter"]
        empty = rebuild(arch)  # shapes alone decide which layers are int8: an artifact matches
        load_state(empty, arch, quantized.state_dict())
        with torch.inference_mode():
            assert torch.equal(empty(x), quantized(x))


def test_torch_ao_fallback_and_artifacts_written_before_torchao_reload(
    teacher: TorchMLP, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reoptd.models.torch import QUANTIZERS, DynamicInt8

    # without torchao the dynamic quantizer is torch.ao's
    monkeypatch.setitem(QUANTIZERS, "dynamic_int8", DynamicInt8("torch.ao"))
    quantized = C.quantize(teacher)
    assert quantized.arch["backend"] == "torch.ao"
    kinds = {type(m).__module__ for m in quantized.net if not isinstance(m, nn.ReLU)}
    assert kinds == {"torch.ao.nn.quantized.dynamic.modules.linear"}
    assert len(quantized.to_bytes()) < 0.45 * len(teacher.to_bytes())
    _reloads_identically(quantized)
    # an artifact written before torchao names no backend: it is torch.ao's and reloads so
    quantized.arch = {k: v for k, v in quantized.arch.items() if k != "backend"}
    _reloads_identically(quantized)


def _quantized_state(model: TorchMLP) -> dict[str, list]:
    """Every scale, zero point, int8 weight and bias of a quantized network, as plain values."""
    assert model.net is not None
    out: dict[str, list] = {}
    for key, value in model.net.state_dict().items():
        if isinstance(value, tuple):  # a quantized Linear's packed (weight, bias)
            weight, bias = value
            out[key] = [
                weight.q_per_channel_scales().tolist(),
                weight.q_per_channel_zero_points().tolist(),
                weight.int_repr().tolist(),
                None if bias is None else bias.tolist(),
            ]
        elif isinstance(value, torch.Tensor):
            out[key] = value.tolist()
    return out


@pytest.fixture
def torch_ao_static(monkeypatch: pytest.MonkeyPatch) -> None:
    """The static quantizer as it is without torchao: torch.ao's eager mode (the fallback;
    torchao's PT2E path is tested in tests/models/test_static_pt2e.py)."""
    from reoptd.models.torch import QUANTIZERS, StaticInt8

    monkeypatch.setitem(QUANTIZERS, "static_int8", StaticInt8("torch.ao"))


@pytest.mark.usefixtures("torch_ao_static")
def test_static_quantization_fuses_calibrates_shrinks_and_reloads(teacher: TorchMLP) -> None:
    calibration = C.calibration_rows(TRAIN, 500)
    assert len(calibration) == 500 and calibration.index[-1] == TRAIN.index[-1]
    static = C.static_quantize(teacher, calibration)
    assert static.arch["quantized"] == "static_int8" and static.compression == ["static_quantize"]
    assert static.arch["backend"] == "torch.ao"
    kinds = [type(m).__name__ for m in static.net]
    # stubs around the network, each hidden Linear fused with its ReLU (which becomes Identity)
    assert kinds == [
        "Quantize",
        "LinearReLU",
        "Identity",
        "LinearReLU",
        "Identity",
        "Linear",
        "DeQuantize",
    ]
    quantized = [m for m in static.net if not isinstance(m, nn.Identity)]
    assert all("quantized" in type(m).__module__ for m in quantized)
    with torch.inference_mode():
        out = static.net(teacher._matrix(TEST[teacher.features]))
    assert out.dtype == torch.float32 and out.shape == (len(TEST), 2)
    assert static.predict(TEST).shape == (len(TEST),)
    assert static.predict_score(TEST).shape == (len(TEST),)
    assert len(static.to_bytes()) < 0.55 * len(teacher.to_bytes())
    assert np.allclose(static.predict_score(TEST), teacher.predict_score(TEST), atol=0.05)
    loaded = _reloads_identically(static)
    state = _quantized_state(static)
    assert "0.scale" in state and "0.zero_point" in state  # the input's calibrated scale
    assert _quantized_state(loaded) == state
    with pytest.raises(Exception, match="cannot be compressed further"):
        C.quantize(static)


@pytest.mark.usefixtures("torch_ao_static")
def test_static_quantization_chains_after_pruning_and_low_rank(teacher: TorchMLP) -> None:
    chained = C.static_quantize(C.low_rank(C.structured_prune(teacher, 0.5), 0.7), TRAIN[:300])
    assert chained.compression == ["prune", "low_rank", "static_quantize"]
    # a low-rank pair's second factor is fused with the ReLU after it
    assert type(chained.net[1][1]).__name__ == "LinearReLU"
    loaded = _reloads_identically(chained)
    assert _quantized_state(loaded) == _quantized_state(chained)


def test_a_chain_reloads_with_every_layer_kind(teacher: TorchMLP) -> None:
    chained = C.quantize(C.low_rank(C.structured_prune(teacher, 0.5), 0.7))
    assert chained.compression == ["prune", "low_rank", "quantize"]
    _reloads_identically(chained)


def test_distillation_trains_a_smaller_student_of_a_torch_teacher(teacher: TorchMLP) -> None:
    student = C.distill(
        teacher,
        TRAIN,
        TRAIN["churned"],
        hidden=[16],
        temperature=4.0,
        alpha=0.7,
        epochs=20,
        lr=3e-3,
        timestamp="ts",
    )
    assert [(m.in_features, m.out_features) for m in _linears(student)] == [(10, 16), (16, 2)]
    assert student.classes == teacher.classes and student.compression == ["distill"]
    assert len(student.to_bytes()) < 0.3 * len(teacher.to_bytes())
    assert _accuracy(student) > _accuracy(teacher) - 0.05
    _reloads_identically(student)


def test_distillation_learns_from_an_sklearn_teacher() -> None:
    policy = parse_policy(DEMO_POLICY.read_text(), "demo.yaml")
    params = {**policy.train.params, "max_iter": 40}
    forest = build_model(policy, params).fit(TRAIN, TRAIN["churned"])
    assert isinstance(forest, SklearnModel)
    student = C.distill(
        forest,
        TRAIN,
        TRAIN["churned"],
        hidden=[32],
        temperature=2.0,
        alpha=0.7,
        epochs=20,
        lr=3e-3,
    )
    assert isinstance(student, TorchMLP) and student.numerical == policy.features.numerical
    agree = (student.predict(TEST) == forest.predict(TEST)).mean()
    assert agree > 0.8 and _accuracy(student) > _accuracy(forest) - 0.05
    _reloads_identically(student)
    # for sklearn only chains through distill can be built
    assert ("quantize", "static_quantize") not in C.sequences(
        ["quantize", "static_quantize"], torch_baseline=True
    )
    chains = C.sequences(["distill", "prune", "quantize"], torch_baseline=False)
    assert chains == [
        ("distill",),
        ("distill", "prune"),
        ("distill", "quantize"),
        ("distill", "prune", "quantize"),
    ]


def _candidate(name: str, metric: float, size: int, p50: dict[int, float]) -> Candidate:
    latency = {b: Latency(b, ms, ms * 1.2, 30) for b, ms in p50.items()}
    return Candidate(name, name.split("+") if name != BASELINE else [], metric, size, latency)


def test_selection_refuses_quantization_that_is_slower_at_batch_1() -> None:
    # measured: int8 is 4x smaller and 2x faster at batch 256, but 1.6x slower at batch 1
    candidates = [
        _candidate(BASELINE, 0.90, 4_000_000, {1: 0.50, 256: 8.0}),
        _candidate("quantize", 0.899, 1_000_000, {1: 0.80, 256: 4.0}),
    ]
    at_1 = select(
        candidates, objective="latency", batch_size=1, max_metric_drop=0.01, higher_is_better=True
    )
    assert at_1.chosen.name == BASELINE and "kept uncompressed" in at_1.reason
    assert "not better than the uncompressed model on latency" in candidates[1].verdict
    at_256 = select(
        candidates, objective="latency", batch_size=256, max_metric_drop=0.01, higher_is_better=True
    )
    assert at_256.chosen.name == "quantize" and "2.00x" in at_256.reason
    by_size = select(
        candidates, objective="size", batch_size=1, max_metric_drop=0.01, higher_is_better=True
    )
    assert by_size.chosen.name == "quantize"


def test_selection_respects_the_metric_drop_and_picks_the_best_eligible() -> None:
    candidates = [
        _candidate(BASELINE, 2.0, 1000, {1: 1.0}),  # rmse: lower is better
        _candidate("distill", 2.3, 100, {1: 0.2}),  # fastest, but 0.3 worse
        _candidate("prune", 2.05, 500, {1: 0.6}),
        _candidate("prune+quantize", 2.08, 200, {1: 0.5}),
        _candidate("magnitude", 1.9, 1000, {1: 1.1}),  # better metric, slower
    ]
    chosen = select(
        candidates, objective="latency", batch_size=1, max_metric_drop=0.1, higher_is_better=False
    )
    assert chosen.chosen.name == "prune+quantize"
    assert candidates[1].verdict.startswith("metric drop 0.3000 > max_metric_drop")
    assert candidates[4].verdict.startswith("not better")
    assert candidates[3].verdict.startswith("chosen")


def test_a_latency_win_within_timing_noise_keeps_the_uncompressed_model() -> None:
    # the README's case: "1.17x better latency" for an f1 0.0028 lower is noise, not a win
    candidates = [
        _candidate(BASELINE, 0.80, 1000, {1: 1.17}),
        _candidate("distill+low_rank", 0.7972, 400, {1: 1.0}),
    ]
    kept = select(
        candidates, objective="latency", batch_size=1, max_metric_drop=0.01, higher_is_better=True
    )
    assert kept.chosen.name == BASELINE and "kept uncompressed" in kept.reason
    assert "1.17x faster < compress.min_speedup 1.2x" in candidates[1].verdict
    # a stated lower ratio lets it through when the intervals are apart
    lower = select(
        candidates,
        objective="latency",
        batch_size=1,
        max_metric_drop=0.01,
        higher_is_better=True,
        min_speedup=1.1,
    )
    assert lower.chosen.name == "distill+low_rank"
    # 2x on the medians, but the timings overlap: still noise
    noisy = [
        Candidate(
            BASELINE, [], 0.8, 1000, {1: Latency(1, 2.0, 3.0, 30, ci_low_ms=0.9, ci_high_ms=3.0)}
        ),
        Candidate(
            "prune",
            ["prune"],
            0.8,
            900,
            {1: Latency(1, 1.0, 1.5, 30, ci_low_ms=0.8, ci_high_ms=1.4)},
        ),
    ]
    chosen = select(
        noisy, objective="latency", batch_size=1, max_metric_drop=0.01, higher_is_better=True
    )
    assert chosen.chosen.name == BASELINE
    assert "intervals of the medians overlap" in noisy[1].verdict
    # the policy carries the ratio, 1.2 by default, and explain states it
    from reoptd.policy._schema import Compress

    assert Compress().min_speedup == 1.2
    with pytest.raises(ValueError):
        Compress(min_speedup=0.9)


def test_median_interval_brackets_the_median_and_narrows_with_repetitions() -> None:
    from reoptd.optimize.compress._measure import median_interval

    rng = np.random.default_rng(0)
    samples = rng.normal(10, 1, 1000)
    few = median_interval(samples[:10])
    many = median_interval(samples)
    assert few[0] <= np.median(samples[:10]) <= few[1]
    assert many[0] <= np.median(samples) <= many[1] and many[1] - many[0] < few[1] - few[0]


def test_quantization_is_measured_not_assumed(teacher: TorchMLP) -> None:
    policy = _policy(compress="{methods: [quantize], batch_size: 1, batch_sizes: [128]}")
    plan = C.compress_model(teacher, TRAIN, TEST, policy)
    base, quantized = plan.candidates
    assert (base.name, quantized.name) == (BASELINE, "quantize")
    for candidate in plan.candidates:  # every number was measured on this machine
        assert set(candidate.latency) == {1, 128}
        assert all(v.p50_ms > 0 and v.p95_ms >= v.p50_ms for v in candidate.latency.values())
        assert candidate.size_bytes == len(candidate.model.to_bytes())
    faster = quantized.latency[1].p50_ms < base.latency[1].p50_ms
    close = base.metric - quantized.metric <= 0.01
    assert (plan.chosen.name == "quantize") == (faster and close)
    record = plan.record()
    assert record["chosen"] == plan.chosen.name and len(record["candidates"]) == 2
    assert set(record["candidates"][1]) >= {
        "name",
        "methods",
        "metric",
        "size_bytes",
        "latency_p50_ms",
        "latency_p95_ms",
        "batch_size",
    }


def test_static_quantization_is_a_measured_candidate(teacher: TorchMLP) -> None:
    policy = _policy(
        pipeline="pipeline: [retrain, compress, validate]",
        compress="{methods: [low_rank, quantize, static_quantize], batch_sizes: [64],"
        " repetitions: 5, static_quantize: {calibration_rows: 256}}",
    )
    plan = C.compress_model(teacher, TRAIN, TEST, policy)
    names = [c.name for c in plan.candidates]
    # alone and after low_rank, never after the other quantization
    assert names == [
        BASELINE,
        "low_rank",
        "quantize",
        "static_quantize",
        "low_rank+quantize",
        "low_rank+static_quantize",
    ]
    base = plan.candidates[0]
    for candidate in plan.candidates[3:6:2]:
        assert candidate.model.arch["quantized"] == "static_int8"
        assert set(candidate.latency) == {1, 64}
        assert all(v.p50_ms > 0 for v in candidate.latency.values())
        assert candidate.size_bytes == len(candidate.model.to_bytes()) < base.size_bytes
        assert candidate.verdict  # judged like every other candidate
    chosen = plan.chosen
    eligible = [
        c
        for c in plan.candidates[1:]
        if base.metric - c.metric <= 0.01
        # faster beyond timing noise: compress.min_speedup (1.2x) and intervals apart
        and c.latency[1].p50_ms * 1.2 <= base.latency[1].p50_ms
        and c.latency[1].interval[1] < base.latency[1].interval[0]
    ]
    best = min(eligible, key=lambda c: c.latency[1].p50_ms) if eligible else base
    assert chosen is best
    record = plan.record()
    assert [c["name"] for c in record["candidates"]] == names
    assert "calibrated on 256 training rows" in " ".join(explain(policy))


def test_the_schema_takes_compress_and_checks_its_place() -> None:
    policy = _policy(pipeline="pipeline: [compress, validate]")
    assert policy.steps == ["compress", "validate"]
    methods = ["distill", "prune", "low_rank", "quantize", "static_quantize"]
    assert policy.compress.methods == methods
    assert policy.compress.options("static_quantize", StaticQuantize).calibration_rows == 1024
    assert any("The compress step takes the current champion" in p for p in explain(policy))
    with pytest.raises(PolicyError, match="`validate` must come after `compress`"):
        _policy(pipeline="pipeline: [retrain, validate, compress]")
    with pytest.raises(PolicyError, match="needs a `retrain` step"):
        _policy(pipeline="pipeline: [tune, compress]")
    with pytest.raises(PolicyError, match="only be compressed by `distill`"):
        _policy(
            train=re.search(r"^train:\n(?:  .*\n)+", DEMO_POLICY.read_text(), re.M).group(0),
            pipeline="pipeline: [retrain, compress, validate]",
            compress="{methods: [quantize]}",
        )
    with pytest.raises(PolicyError, match=r"compress\.methods"):
        _policy(compress="{methods: [svd]}")
    with pytest.raises(PolicyError, match="with threads > 1 write timer: wall"):
        _policy(compress="{threads: 2}")
    assert _policy(compress="{threads: 2, timer: wall}").compress.threads == 2


def test_compressing_without_a_champion_says_so(sqlite_registry: Store, metrics: Metrics) -> None:
    policy = _policy(pipeline="pipeline: [compress, validate]")
    run = ModelLoop(policy, sqlite_registry, metrics).optimize(AFTER_DRIFT, trigger="manual")
    assert run.outcome == "failed"
    assert "has no champion to compress yet; its first run needs a `retrain` step" in run.reason


@pytest.mark.slow
def test_retrain_compress_validate_records_every_candidate(
    sqlite_registry: Store, metrics: Metrics, clock: SimulatedClock
) -> None:
    policy = _policy(
        pipeline="pipeline: [retrain, compress, validate]",
        compress="{methods: [distill, prune, quantize], objective: size, batch_sizes: [64],"
        " distill: {hidden: [16], epochs: 15}}",
    )
    loop = ModelLoop(policy, sqlite_registry, metrics)
    run = loop.optimize(AFTER_DRIFT, trigger="bootstrap")
    assert run.outcome == "promoted", run.reason
    step = run.steps["compress"]
    names = [c["name"] for c in step["candidates"]]
    assert names[0] == BASELINE and len(names) == 8  # the baseline + 7 chains of 3 methods
    assert step["chosen"] != BASELINE and step["baseline"] == "challenger"
    chosen = next(c for c in step["candidates"] if c["name"] == step["chosen"])
    base = step["candidates"][0]
    assert chosen["size_bytes"] < base["size_bytes"]
    assert base["metric"] - chosen["metric"] <= 0.01
    version = sqlite_registry.champion(policy.model)
    assert version is not None and version.size_bytes == chosen["size_bytes"]
    assert version.metrics["compression"]["name"] == step["chosen"]
    champion = loop.champion().model
    assert isinstance(champion, TorchMLP) and champion.compression == chosen["methods"]
    # per-version size and latency at scrape time
    exported = CollectorRegistry()
    scraped = Metrics(registry=exported)
    scraped.watch_champions(sqlite_registry, clock)
    labels = {"model": policy.model, "version": "1"}
    assert exported.get_sample_value("reoptd_version_size_bytes", labels) == version.size_bytes
    p95 = exported.get_sample_value(
        "reoptd_version_latency_seconds", {**labels, "batch_size": "64", "percentile": "95"}
    )
    assert p95 == pytest.approx(chosen["latency_by_batch"]["64"]["p95_ms"] / 1000)


@pytest.mark.slow
def test_cli_compresses_the_champion(tmp_path: Path) -> None:
    reoptd = str(Path(sys.executable).parent / "reoptd")
    env = {**os.environ, "REOPTD_HOME": str(tmp_path / "home")}
    data = tmp_path / "demo.parquet"
    subprocess.run([reoptd, "demo", "export", str(data)], env=env, check=True, capture_output=True)
    policy = tmp_path / "torch.yaml"
    text = re.sub(r"^train:\n(?:  .*\n)+", TORCH_TRAIN, DEMO_POLICY.read_text(), flags=re.M)
    policy.write_text(
        text + "compress: {methods: [distill, prune, quantize], objective: size, repetitions: 10,"
        " max_metric_drop: 0.05, distill: {hidden: [16], epochs: 15}}\n"
    )
    base = [reoptd, "optimize", "--policy", str(policy), "--data", str(data)]
    first = subprocess.run(base, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    out = tmp_path / "compress.json"
    done = subprocess.run(
        [*base, "--steps", "compress", "--report", str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert set(report["steps"]) == {"compress", "validate"}
    assert report["steps"]["compress"]["baseline"] == "champion v1"
    names = [c["name"] for c in report["candidates"]]
    assert names[0] == BASELINE and len(names) == 8  # the baseline + 7 chains of 3 methods
    for c in report["candidates"]:
        assert c["size_bytes"] > 0 and c["latency_p95_ms"] >= c["latency_p50_ms"] > 0
        assert c["batch_size"] == 1 and isinstance(c["methods"], list)
    chosen = next(c for c in report["candidates"] if c["name"] == report["chosen"])
    assert chosen["size_bytes"] < report["candidates"][0]["size_bytes"]
    assert report["outcome"] == "promoted", report["reason"]
    assert "compressed champion v1" in report["reason"]
    shown = subprocess.run(
        [reoptd, "models", "show", "demo_churn"], env=env, capture_output=True, text=True
    )
    assert shown.returncode == 0 and "v2" in shown.stdout
    assert f"compress: {report['chosen']}, {chosen['size_bytes']} bytes" in shown.stdout
