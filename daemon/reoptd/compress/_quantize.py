"""Quantization behind one small interface, so torchao can replace ``torch.ao.quantization``.

``torch.ao.quantization`` is deprecated (torchao is its successor) but works in torch 2.13; every
use of it is in this module. A quantizer turns a float network into a quantized one and, when an
artifact is loaded, prepares an empty float network so the saved quantized state dict fits it.
"""

from __future__ import annotations

import warnings
from typing import Protocol

import torch
from torch import nn

from reoptd.errors import ArtifactError


class Quantizer(Protocol):
    name: str

    def quantize(self, net: nn.Sequential) -> nn.Sequential:
        """A quantized copy of the float ``net`` (which stays unchanged)."""
        ...

    def prepare_for_load(self, net: nn.Sequential) -> nn.Sequential:
        """The empty float ``net`` turned into the module a saved state dict loads into."""
        ...


class DynamicInt8:
    """Linear weights stored as int8, activations quantized on the fly at each call.

    It shrinks the weights 4x; whether it is faster depends on the batch size (per-call
    quantization overhead dominates small batches), which is why the compress step measures it.
    """

    name = "dynamic_int8"

    def quantize(self, net: nn.Sequential) -> nn.Sequential:
        import copy

        return self._convert(copy.deepcopy(net))

    def prepare_for_load(self, net: nn.Sequential) -> nn.Sequential:
        return self._convert(net)

    @staticmethod
    def _convert(net: nn.Sequential) -> nn.Sequential:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            return torch.ao.quantization.quantize_dynamic(
                net.eval(), {nn.Linear}, dtype=torch.qint8, inplace=True
            )


QUANTIZERS: dict[str, Quantizer] = {"dynamic_int8": DynamicInt8()}


def quantizer(name: str) -> Quantizer:
    try:
        return QUANTIZERS[name]
    except KeyError:
        raise ArtifactError(
            f"unknown quantization {name!r}; known: {', '.join(QUANTIZERS)}"
        ) from None


def quantize(model, name: str = "dynamic_int8"):
    """The ``quantize`` method: ``model`` (a fitted ``TorchMLP``) with quantized Linear layers."""
    from reoptd.compress._arch import describe
    from reoptd.compress._common import float_copy, with_network

    net = float_copy(model)
    arch = describe(net, quantized=name)
    return with_network(model, quantizer(name).quantize(net), "quantize", arch)
