"""The ``quantize`` (dynamic int8), ``weight_quantize`` (weight-only int8) and
``static_quantize`` (post-training static int8) methods, through the torch family's quantizers
(torchao first, torch.ao as the fallback: ``reoptd.models.torch``). A quantized network is not
compressed further: each ends a chain."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reoptd.plugins import COMPRESS_METHODS, CompressMethod

__all__ = ["METHOD", "STATIC", "WEIGHT_ONLY", "StaticQuantize"]


class StaticQuantize(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calibration_rows: int = Field(
        1024,
        ge=1,
        description="training rows (evenly spaced over the window) passed through the network to"
        " fix the activation scales of `static_quantize`",
    )


def _dynamic(model: Any, fit_rows: Any, policy: Any) -> Any:
    from reoptd.optimize.compress.methods._quantize import quantize

    return quantize(model)


def _weight_only(model: Any, fit_rows: Any, policy: Any) -> Any:
    from reoptd.optimize.compress.methods._quantize import weight_only_quantize

    return weight_only_quantize(model)


def _static(model: Any, fit_rows: Any, policy: Any) -> Any:
    from reoptd.optimize.compress.methods._quantize import calibration_rows, static_quantize

    rows = policy.compress.options("static_quantize", StaticQuantize).calibration_rows
    return static_quantize(model, calibration_rows(fit_rows, rows))


METHOD = COMPRESS_METHODS.register(
    CompressMethod(
        name="quantize",
        description="dynamic int8 Linear layers (torchao; torch.ao without it)",
        apply=_dynamic,
        order=50,
        ends_chain=True,
        explain=lambda policy: "dynamic int8 quantization",
    )
)
WEIGHT_ONLY = COMPRESS_METHODS.register(
    CompressMethod(
        name="weight_quantize",
        description="weight-only int8 Linear layers, float activations (torchao)",
        apply=_weight_only,
        order=50,
        ends_chain=True,
        default=False,
        explain=lambda policy: "weight-only int8 quantization",
    )
)
STATIC = COMPRESS_METHODS.register(
    CompressMethod(
        name="static_quantize",
        description="post-training static int8 (weights and activations, calibrated on training"
        " rows; torchao's PT2E flow with its x86 quantizer, torch.ao's eager mode without it)",
        apply=_static,
        order=50,
        ends_chain=True,
        config=StaticQuantize,
        explain=lambda policy: (
            "static post-training int8 quantization (torchao PT2E, else torch.ao; calibrated on"
            f" {policy.compress.options('static_quantize', StaticQuantize).calibration_rows}"
            " training rows)"
        ),
    )
)
