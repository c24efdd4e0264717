"""Compression methods: plugin modules (``distillation``: distill; ``pruning``: prune and
magnitude; ``factorization``: low_rank; ``quantization``: quantize and static_quantize) declaring
their names, options and defaults, and private modules with the torch implementations, imported
when a method is applied. (Plugin modules are not named after the functions exported here.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reoptd import lazy

if TYPE_CHECKING:
    from reoptd.optimize.compress.methods._distill import distill
    from reoptd.optimize.compress.methods._low_rank import low_rank
    from reoptd.optimize.compress.methods._prune import magnitude_prune, structured_prune
    from reoptd.optimize.compress.methods._quantize import (
        calibration_rows,
        quantize,
        static_quantize,
        weight_only_quantize,
    )

__all__ = [
    "calibration_rows",
    "distill",
    "low_rank",
    "magnitude_prune",
    "quantize",
    "static_quantize",
    "structured_prune",
    "weight_only_quantize",
]

__getattr__, __dir__ = lazy.lazy_exports(
    __name__,
    {
        "distill": "._distill",
        "low_rank": "._low_rank",
        "magnitude_prune": "._prune",
        "structured_prune": "._prune",
        "calibration_rows": "._quantize",
        "quantize": "._quantize",
        "static_quantize": "._quantize",
        "weight_only_quantize": "._quantize",
    },
)
