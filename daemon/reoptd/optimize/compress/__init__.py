"""Re-compression of torch models, chosen by measurement (the compress step's machinery).

``methods/`` holds the methods, one plugin module each (``reoptd.plugins.COMPRESS_METHODS``);
``_measure`` measures size and latency, ``_select`` makes the accuracy-aware choice, ``_export``
makes a candidate's ONNX serving form and ``_plan`` builds and measures every candidate. The
network description and the quantized modules belong to the torch family
(``reoptd.models.torch``). Names are imported on first use (torch is heavy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reoptd import lazy

if TYPE_CHECKING:
    from reoptd.optimize.compress._export import (
        ONNX_SUFFIX,
        NotExportable,
        export_onnx,
        max_difference,
    )
    from reoptd.optimize.compress._measure import (
        Latency,
        latencies,
        latency,
        serving_call,
        size_bytes,
    )
    from reoptd.optimize.compress._plan import Plan, compress_model, sequences
    from reoptd.optimize.compress._select import (
        BASELINE,
        Candidate,
        Selection,
        metric_drop,
        select,
    )
    from reoptd.optimize.compress.methods import (
        calibration_rows,
        distill,
        low_rank,
        magnitude_prune,
        quantize,
        static_quantize,
        structured_prune,
        weight_only_quantize,
    )

__all__ = [
    "BASELINE",
    "ONNX_SUFFIX",
    "Candidate",
    "Latency",
    "NotExportable",
    "Plan",
    "Selection",
    "calibration_rows",
    "compress_model",
    "distill",
    "export_onnx",
    "latencies",
    "latency",
    "low_rank",
    "magnitude_prune",
    "max_difference",
    "metric_drop",
    "quantize",
    "select",
    "sequences",
    "serving_call",
    "size_bytes",
    "static_quantize",
    "structured_prune",
    "weight_only_quantize",
]

__getattr__, __dir__ = lazy.lazy_exports(
    __name__,
    {
        "ONNX_SUFFIX": "._export",
        "NotExportable": "._export",
        "export_onnx": "._export",
        "max_difference": "._export",
        "Latency": "._measure",
        "serving_call": "._measure",
        "latencies": "._measure",
        "latency": "._measure",
        "size_bytes": "._measure",
        "Plan": "._plan",
        "compress_model": "._plan",
        "sequences": "._plan",
        "BASELINE": "._select",
        "Candidate": "._select",
        "Selection": "._select",
        "metric_drop": "._select",
        "select": "._select",
        "calibration_rows": ".methods._quantize",
        "distill": ".methods._distill",
        "low_rank": ".methods._low_rank",
        "magnitude_prune": ".methods._prune",
        "quantize": ".methods._quantize",
        "static_quantize": ".methods._quantize",
        "structured_prune": ".methods._prune",
        "weight_only_quantize": ".methods._quantize",
    },
)
