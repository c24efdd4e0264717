"""The torch family's quantized modules behind one small interface (``Quantizer``), so that
torchao can replace ``torch.ao.quantization``.

``torch.ao.quantization`` is deprecated (torchao is its successor) but works in torch 2.13; every
use of it is in this module. A quantizer turns a float network into a quantized one and, when an
artifact is loaded, prepares an empty float network so the saved quantized state dict fits it.

Two quantizers: ``dynamic_int8`` (int8 weights, activations quantized at each call) and
``static_int8`` (eager-mode post-training static quantization: int8 weights and activations, the
activation scales fixed by calibration on sample rows, Linear+ReLU fused into one kernel).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import nn

from reoptd.errors import ArtifactError, OptimizeError
from reoptd.models.torch._mlp import SETTINGS_LOCK

#: the x86 backend (fbgemm on older builds) that the static quantizer's qconfig targets
STATIC_ENGINES = ("x86", "fbgemm")


class Quantizer(Protocol):
    name: str

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


class DynamicInt8:
    """Linear weights stored as int8, activations quantized on the fly at each call.

    It shrinks the weights 4x; whether it is faster depends on the batch size (per-call
    quantization overhead dominates small batches), which is why the compress step measures it.
    """

    name = "dynamic_int8"

    def quantize(
        self, net: nn.Sequential, calibration: torch.Tensor | None = None
    ) -> nn.Sequential:
        return self._convert(copy.deepcopy(net))

    def prepare_for_load(self, net: nn.Sequential) -> nn.Sequential:
        return self._convert(net)

    @staticmethod
    def _convert(net: nn.Sequential) -> nn.Sequential:
        with _quiet():
            return torch.ao.quantization.quantize_dynamic(
                net.eval(), {nn.Linear}, dtype=torch.qint8, inplace=True
            )


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

    The float network is wrapped as ``QuantStub, *layers, DeQuantStub`` (one flat Sequential),
    every Linear directly followed by a ReLU is fused with it (also the second factor of a
    low-rank layer), observers record activation ranges while ``calibration`` rows pass through,
    and ``convert`` swaps in quantized modules. Without the per-call quantization of the dynamic
    kind it can be faster at small batches, at the price of the calibration's rounding.
    """

    name = "static_int8"

    def quantize(
        self, net: nn.Sequential, calibration: torch.Tensor | None = None
    ) -> nn.Sequential:
        if calibration is None or len(calibration) == 0:
            raise OptimizeError("static int8 quantization needs calibration rows")
        prepared = self._prepare(copy.deepcopy(net))
        with torch.inference_mode():
            prepared(calibration)
        return self._convert(prepared)

    def prepare_for_load(self, net: nn.Sequential) -> nn.Sequential:
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


QUANTIZERS: dict[str, Quantizer] = {"dynamic_int8": DynamicInt8(), "static_int8": StaticInt8()}


def quantizer(name: str) -> Quantizer:
    try:
        return QUANTIZERS[name]
    except KeyError:
        raise ArtifactError(
            f"unknown quantization {name!r}; known: {', '.join(QUANTIZERS)}"
        ) from None
