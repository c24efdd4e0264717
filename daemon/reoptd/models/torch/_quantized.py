"""The torch family's quantized modules behind one small interface (``Quantizer``): torchao
first, ``torch.ao.quantization`` as the fallback while it exists.

``torch.ao.quantization`` is deprecated (torchao is its successor) but works in torch 2.13; every
use of either is in this module and ``_pt2e`` (torchao's static path). A quantizer turns a float
network into a quantized one and, when an artifact is loaded, prepares an empty float network so
the saved quantized state dict fits it.
The backend that quantized a network is recorded in its description (``arch["backend"]``:
``torchao`` or ``torch.ao``; an artifact written before torchao has none and is ``torch.ao``), so
an artifact always reloads with the backend that wrote it.

Three quantizers:

- ``dynamic_int8``: int8 weights, activations quantized at each call (torchao's
  ``Int8DynamicActivationInt8WeightConfig``; torch.ao's ``quantize_dynamic`` without torchao);
- ``weight_only_int8``: int8 weights, float activations (torchao's ``Int8WeightOnlyConfig``; no
  torch.ao fallback);
- ``static_int8``: post-training static quantization (int8 weights and activations, the
  activation scales fixed by calibration on sample rows). With torchao it is its PT2E flow
  (``torch.export``, ``prepare_pt2e`` with the x86 quantizer, ``convert_pt2e``), kept as plain
  ``Int8Linear`` layers that an artifact rebuilds and that export to an ONNX Q/DQ graph
  (``_pt2e``); without torchao, or when PT2E fails on a network, torch.ao's eager mode
  (Linear+ReLU fused into one kernel, x86/fbgemm engine).

torchao's int8 layers run as eager tensor subclasses on the CPU; whether they are faster than the
float network is what the compress step measures (often not, without ``torch.compile``).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import nn

from reoptd.errors import ArtifactError, OptimizeError
from reoptd.models.torch._mlp import SETTINGS_LOCK

#: the x86 backend (fbgemm on older builds) that the static quantizer's qconfig targets
STATIC_ENGINES = ("x86", "fbgemm")


#: the quantization backends, preferred first
BACKENDS = ("torchao", "torch.ao")


class Quantizer(Protocol):
    name: str
    backend: str  # torchao or torch.ao

    def quantize(
        self, net: nn.Sequential, calibration: torch.Tensor | None = None
    ) -> nn.Sequential:
        """A quantized copy of the float ``net`` (which stays unchanged); ``calibration`` is a
        batch of preprocessed input rows for quantizers that fix activation scales ahead."""
        ...

    def prepare_for_load(self, net: nn.Sequential) -> nn.Sequential:
        """The empty float ``net`` turned into the module a saved state dict loads into."""
        ...


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


@functools.cache
def torchao_available() -> bool:
    return importlib.util.find_spec("torchao") is not None


def _torchao_quantization() -> Any:
    """``torchao.quantization``, imported quietly (it logs every optional CUDA kernel it lacks)."""
    with _quiet_torchao_import():
        import torchao.quantization as quantization
    return quantization


def torchao_pt2e() -> tuple[Any, Any]:
    """torchao's PT2E flow (``quantize_pt2e``) and its x86 quantizer module, imported quietly;
    ``OptimizeError`` when they are not there."""
    try:
        with _quiet_torchao_import():
            from torchao.quantization.pt2e import quantize_pt2e
            from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer
    except ImportError as exc:
        raise OptimizeError(f"torchao's PT2E quantization is not available: {exc}") from None
    return quantize_pt2e, x86_inductor_quantizer


@contextmanager
def _quiet_torchao_import() -> Iterator[None]:
    """torchao logs every optional CUDA kernel it lacks, and torch 2.13 warns through
    ``torch.utils._pytree`` about how torchao registers an enum: neither concerns reoptd."""
    loggers = [logging.getLogger(n) for n in ("torchao", "root", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with _quiet():
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class DynamicInt8:
    """Linear weights stored as int8, activations quantized on the fly at each call.

    It shrinks the weights 4x; whether it is faster depends on the batch size (per-call
    quantization overhead dominates small batches), which is why the compress step measures it.
    """

    name = "dynamic_int8"

    def __init__(self, backend: str | None = None) -> None:
        self.backend = backend or ("torchao" if torchao_available() else "torch.ao")

    def quantize(
        self, net: nn.Sequential, calibration: torch.Tensor | None = None
    ) -> nn.Sequential:
        return self._convert(copy.deepcopy(net))

    def prepare_for_load(self, net: nn.Sequential) -> nn.Sequential:
        return self._convert(net)

    def _convert(self, net: nn.Sequential) -> nn.Sequential:
        if self.backend == "torchao":
            ao = _torchao_quantization()
            return _torchao_quantize(net, ao.Int8DynamicActivationInt8WeightConfig())
        with _quiet():
            return torch.ao.quantization.quantize_dynamic(
                net.eval(), {nn.Linear}, dtype=torch.qint8, inplace=True
            )


class WeightOnlyInt8:
    """Linear weights stored as int8 (per output channel), activations left in float: the
    weights shrink 4x with the least rounding; torchao only."""

    name = "weight_only_int8"

    def __init__(self, backend: str | None = None) -> None:
        if backend not in (None, "torchao"):
            raise ArtifactError(f"weight-only int8 has no {backend!r} backend, only torchao")
        self.backend = "torchao"

    def quantize(
        self, net: nn.Sequential, calibration: torch.Tensor | None = None
    ) -> nn.Sequential:
        return self._convert(copy.deepcopy(net))

    def prepare_for_load(self, net: nn.Sequential) -> nn.Sequential:
        return self._convert(net)

    @staticmethod
    def _convert(net: nn.Sequential) -> nn.Sequential:
        if not torchao_available():
            raise OptimizeError("weight-only int8 quantization needs torchao, not installed")
        ao = _torchao_quantization()
        return _torchao_quantize(net, ao.Int8WeightOnlyConfig())


#: Linear layers with fewer inputs stay float under torchao (a rank-1 low-rank factor, say):
#: int8 saves nothing there, and torchao 0.18 cannot choose the scales of a 1-input layer
TORCHAO_MIN_INPUTS = 8


def _torchao_quantize(net: nn.Sequential, config: Any) -> nn.Sequential:
    """``net`` with torchao's ``config`` applied in place to each Linear layer that has at least
    ``TORCHAO_MIN_INPUTS`` inputs (decided by shapes only, so a reloaded artifact matches)."""
    ao = _torchao_quantization()

    def wide(module: nn.Module, fqn: str) -> bool:
        return isinstance(module, nn.Linear) and module.in_features >= TORCHAO_MIN_INPUTS

    try:
        with _quiet():
            ao.quantize_(net.eval(), config, filter_fn=wide)
    except Exception as exc:  # torchao raises many kinds on shapes it does not handle
        raise OptimizeError(f"torchao could not quantize the network: {exc}") from None
    return net


def static_engine() -> str:
    """The quantized engine the static quantizer uses: x86, else fbgemm."""
    supported = torch.backends.quantized.supported_engines
    for engine in STATIC_ENGINES:
        if engine in supported:
            return engine
    raise OptimizeError(
        "static int8 quantization needs the x86 or fbgemm quantized engine; this torch build"
        f" has {', '.join(supported)}"
    )


@contextmanager
def quantized_engine() -> Iterator[None]:
    """Run with a static-int8 engine as torch's quantized engine (the current one if it is one,
    else ``static_engine()``), restoring it afterwards. The engine is process-wide: this holds
    ``SETTINGS_LOCK`` so that no other thread changes or relies on it meanwhile."""
    with SETTINGS_LOCK:
        before = torch.backends.quantized.engine
        if before not in STATIC_ENGINES:
            torch.backends.quantized.engine = static_engine()
        try:
            yield
        finally:
            if torch.backends.quantized.engine != before:
                torch.backends.quantized.engine = before


class StaticInt8:
    """Post-training static int8: weights and activations int8, scales fixed by calibration.

    torchao (``_pt2e``): the network is captured with ``torch.export``, quantized by PT2E and
    kept as ``Int8Linear`` layers holding the converted graph's numbers.

    torch.ao (the fallback): the float network is wrapped as ``QuantStub, *layers,
    DeQuantStub`` (one flat Sequential), every Linear directly followed by a ReLU is fused with
    it (also the second factor of a low-rank layer), observers record activation ranges while
    ``calibration`` rows pass through, and ``convert`` swaps in quantized modules.

    Without the per-call quantization of the dynamic kind it can be faster at small batches, at
    the price of the calibration's rounding.
    """

    name = "static_int8"

    def __init__(self, backend: str | None = None) -> None:
        if backend not in (None, *BACKENDS):
            raise ArtifactError(f"static int8 has no {backend!r} backend, only {BACKENDS}")
        self.backend = backend or ("torchao" if torchao_available() else "torch.ao")

    def quantize(
        self, net: nn.Sequential, calibration: torch.Tensor | None = None
    ) -> nn.Sequential:
        if calibration is None or len(calibration) == 0:
            raise OptimizeError("static int8 quantization needs calibration rows")
        if self.backend == "torchao":
            from reoptd.models.torch import _pt2e

            with _quiet():
                return _pt2e.quantize(net, calibration)
        prepared = self._prepare(copy.deepcopy(net))
        with torch.inference_mode():
            prepared(calibration)
        return self._convert(prepared)

    def prepare_for_load(self, net: nn.Sequential) -> nn.Sequential:
        if self.backend == "torchao":
            from reoptd.models.torch._pt2e import placeholders

            return placeholders(net)
        # observers that saw no data give placeholder scales; load_state_dict replaces them
        return self._convert(self._prepare(net))

    @staticmethod
    def _prepare(net: nn.Sequential) -> nn.Sequential:
        engine = static_engine()
        ao = torch.ao.quantization
        wrapped = nn.Sequential(ao.QuantStub(), *net, ao.DeQuantStub()).eval()
        with _quiet():
            groups = list(_linear_relu_pairs(wrapped))
            if groups:
                ao.fuse_modules(wrapped, groups, inplace=True)
            wrapped.qconfig = ao.get_default_qconfig(engine)
            return ao.prepare(wrapped, inplace=True)

    @staticmethod
    def _convert(prepared: nn.Sequential) -> nn.Sequential:
        with quantized_engine(), _quiet():
            return torch.ao.quantization.convert(prepared.eval(), inplace=True)


def _linear_relu_pairs(net: nn.Sequential) -> Iterator[list[str]]:
    """Dotted names of each Linear (or a low-rank pair's second Linear) followed by a ReLU."""
    for i in range(len(net) - 1):
        module, after = net[i], net[i + 1]
        if not isinstance(after, nn.ReLU):
            continue
        if isinstance(module, nn.Linear):
            yield [str(i), str(i + 1)]
        elif isinstance(module, nn.Sequential) and isinstance(module[-1], nn.Linear):
            yield [f"{i}.{len(module) - 1}", str(i + 1)]


_KINDS: dict[str, type[DynamicInt8 | WeightOnlyInt8 | StaticInt8]] = {
    "dynamic_int8": DynamicInt8,
    "weight_only_int8": WeightOnlyInt8,
    "static_int8": StaticInt8,
}

#: each quantizer with its preferred backend
QUANTIZERS: dict[str, Quantizer] = {name: kind() for name, kind in _KINDS.items()}


def quantizer(name: str, backend: str | None = None) -> Quantizer:
    """The quantizer ``name`` with ``backend`` (default: its preferred one), as an artifact's
    description names them."""
    try:
        kind = _KINDS[name]
    except KeyError:
        raise ArtifactError(f"unknown quantization {name!r}; known: {', '.join(_KINDS)}") from None
    if backend is not None and backend not in BACKENDS:
        raise ArtifactError(f"unknown quantization backend {backend!r}; known: {BACKENDS}")
    return QUANTIZERS[name] if backend is None else kind(backend)
