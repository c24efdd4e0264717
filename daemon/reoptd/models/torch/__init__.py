"""The torch family: a tabular MLP (``TorchMLP``), the plain description of a compressed
network (``describe``/``rebuild``) and the quantized modules behind the ``Quantizer`` interface.

This module is the family's declaration (its parameters, defaults and tune space) and is light:
torch is imported by ``_mlp``, ``_arch`` and ``_quantized`` when one of their names is first read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reoptd import lazy
from reoptd.plugins import FAMILIES, ModelFamily

if TYPE_CHECKING:
    from reoptd.models.torch._arch import (
        describe,
        float_network,
        hidden_widths,
        is_low_rank,
        load_state,
        low_rank_module,
        rebuild,
    )
    from reoptd.models.torch._mlp import (
        SETTINGS_LOCK,
        TorchMLP,
        network,
        resolve_params,
        torch_threads,
    )
    from reoptd.models.torch._pt2e import Int8Linear, reference_arithmetic
    from reoptd.models.torch._quantized import (
        BACKENDS,
        QUANTIZERS,
        DynamicInt8,
        Quantizer,
        StaticInt8,
        WeightOnlyInt8,
        quantized_engine,
        quantizer,
        static_engine,
        torchao_available,
    )

__all__ = [
    "BACKENDS",
    "DEFAULTS",
    "FAMILY",
    "MAGIC",
    "PARAMS",
    "QUANTIZERS",
    "SETTINGS_LOCK",
    "DynamicInt8",
    "Int8Linear",
    "Quantizer",
    "StaticInt8",
    "TorchMLP",
    "WeightOnlyInt8",
    "describe",
    "float_network",
    "hidden_widths",
    "is_low_rank",
    "load_state",
    "low_rank_module",
    "network",
    "quantized_engine",
    "quantizer",
    "rebuild",
    "reference_arithmetic",
    "resolve_params",
    "static_engine",
    "torch_threads",
    "torchao_available",
]

#: first bytes of a torch-family artifact (sklearn artifacts are pickles, starting with 0x80)
MAGIC = b"REOPTD-TORCH-MLP\x01\n"

#: ``train.params`` of the torch family (``width``/``depth`` set ``hidden`` to depth x width)
PARAMS = (
    "hidden",
    "width",
    "depth",
    "dropout",
    "lr",
    "epochs",
    "batch_size",
    "weight_decay",
    "patience",
    "seed",
)

#: defaults of ``train.params``; ``width``/``depth`` (the tuner's knobs) rewrite ``hidden``
DEFAULTS: dict[str, Any] = {
    "hidden": [64, 64],
    "dropout": 0.1,
    "lr": 1e-3,
    "epochs": 50,
    "batch_size": 128,
    "weight_decay": 0.0,
    "patience": 5,
    "seed": 0,
}

__getattr__, __dir__ = lazy.lazy_exports(
    __name__,
    {
        "SETTINGS_LOCK": "._mlp",
        "TorchMLP": "._mlp",
        "network": "._mlp",
        "resolve_params": "._mlp",
        "torch_threads": "._mlp",
        "describe": "._arch",
        "float_network": "._arch",
        "hidden_widths": "._arch",
        "is_low_rank": "._arch",
        "load_state": "._arch",
        "low_rank_module": "._arch",
        "rebuild": "._arch",
        "Int8Linear": "._pt2e",
        "reference_arithmetic": "._pt2e",
        "BACKENDS": "._quantized",
        "QUANTIZERS": "._quantized",
        "WeightOnlyInt8": "._quantized",
        "torchao_available": "._quantized",
        "DynamicInt8": "._quantized",
        "StaticInt8": "._quantized",
        "Quantizer": "._quantized",
        "quantized_engine": "._quantized",
        "quantizer": "._quantized",
        "static_engine": "._quantized",
    },
)


def _build(policy: Any, params: dict[str, Any] | None) -> Any:
    from reoptd.models.torch._mlp import TorchMLP

    return TorchMLP.build(policy, params)


def _load(data: bytes) -> Any:
    from reoptd.models.torch._mlp import TorchMLP

    return TorchMLP.from_bytes(data)


FAMILY = FAMILIES.register(
    ModelFamily(
        name="torch",
        description="a tabular MLP (PyTorch, CPU) with the parameters " + ", ".join(PARAMS),
        build=_build,
        load=_load,
        magic=MAGIC,
        params=PARAMS,
        estimators=("", "mlp"),
        learner="torch.mlp",
        default_space={
            "lr": {"float": [1e-4, 1e-2], "log": True},
            "dropout": {"float": [0.0, 0.5]},
            "width": {"choice": [32, 64, 128, 256]},
            "depth": {"int": [1, 3]},
        },
    )
)
