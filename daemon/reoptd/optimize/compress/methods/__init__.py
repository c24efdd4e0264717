"""Compression methods: one plugin module each (``distill``, ``prune`` with ``magnitude``,
``low_rank``, ``quantize`` with ``static_quantize``) declaring its name, options and defaults,
and one private module each with the torch implementation, imported when the method is applied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reoptd.lazy import lazy_exports

if TYPE_CHECKING:
    from reoptd.optimize.compress.methods._distill import distill
    from reoptd.optimize.compress.methods._low_rank import low_rank
    from reoptd.optimize.compress.methods._prune import magnitude_prune, structured_prune
    from reoptd.optimize.compress.methods._quantize import (
        calibration_rows,
        quantize,
        static_quantize,
    )

__all__ = [
    "calibration_rows",
    "distill",
    "low_rank",
    "magnitude_prune",
    "quantize",
    "static_quantize",
    "structured_prune",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "distill": "._distill",
        "low_rank": "._low_rank",
        "magnitude_prune": "._prune",
        "structured_prune": "._prune",
        "calibration_rows": "._quantize",
        "quantize": "._quantize",
        "static_quantize": "._quantize",
    },
)
