"""The ``quantize`` and ``static_quantize`` methods: a fitted ``TorchMLP`` with quantized Linear
layers, through the torch family's ``Quantizer`` interface (``reoptd.models.torch``)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from reoptd.errors import OptimizeError
from reoptd.models.torch import TorchMLP, describe, quantizer
from reoptd.optimize.compress.methods._common import float_copy, with_network

log = logging.getLogger("reoptd.compress")


def quantize(
    model: TorchMLP,
    name: str = "dynamic_int8",
    calibration: pd.DataFrame | None = None,
    method: str = "quantize",
) -> TorchMLP:
    """The ``quantize`` method: ``model`` (a fitted ``TorchMLP``) with quantized Linear layers.

    ``calibration`` (a frame of the model's feature columns) is what static quantizers calibrate
    on; ``method`` is the name the model's ``compression`` list records. When torchao fails on
    the network of a static quantizer, torch.ao's eager mode quantizes it (logged); the
    backend that did is recorded in ``arch["backend"]``."""
    net = float_copy(model)
    chosen = quantizer(name)
    rows = None if calibration is None else model._matrix(calibration[model.features])
    try:
        quantized = chosen.quantize(net, rows)
    except OptimizeError as exc:
        if chosen.backend != "torchao" or name != "static_int8":
            raise
        log.warning("%s: torchao failed, torch.ao's eager quantization instead: %s", method, exc)
        chosen = quantizer(name, "torch.ao")
        quantized = chosen.quantize(net, rows)
    log.info("%s: %s quantized by %s", method, name, chosen.backend)
    arch = {**describe(net, quantized=name), "backend": chosen.backend}
    return with_network(model, quantized, method, arch)


def weight_only_quantize(model: TorchMLP) -> TorchMLP:
    """The ``weight_quantize`` method: int8 weights, float activations (torchao)."""
    return quantize(model, "weight_only_int8", method="weight_quantize")


def static_quantize(model: TorchMLP, calibration: pd.DataFrame) -> TorchMLP:
    """The ``static_quantize`` method: post-training static int8, calibrated on the rows of
    ``calibration`` (a frame with the model's feature columns)."""
    return quantize(model, "static_int8", calibration, method="static_quantize")


def calibration_rows(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` rows of ``frame`` evenly spaced over it (all of them when it has fewer), so that
    calibration sees the whole training window, deterministically."""
    if len(frame) <= n:
        return frame
    return frame.iloc[np.linspace(0, len(frame) - 1, n).round().astype(int)]
