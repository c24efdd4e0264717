"""Re-compression of torch models, chosen by measurement (the compress step's machinery).

One module per method (``_distill``, ``_prune``, ``_low_rank``, ``_quantize`` for
dynamic and static int8), ``_measure`` for
size and latency, ``_select`` for the accuracy-aware choice, ``_plan`` to build and measure every
candidate, ``_arch`` for the plain layer description a compressed artifact carries.
"""

from reoptd.compress._distill import distill
from reoptd.compress._low_rank import low_rank
from reoptd.compress._measure import Latency, latencies, latency, size_bytes
from reoptd.compress._plan import Plan, calibration_rows, compress_model, sequences
from reoptd.compress._prune import magnitude_prune, structured_prune
from reoptd.compress._quantize import QUANTIZERS, Quantizer, quantize, static_quantize
from reoptd.compress._select import BASELINE, Candidate, Selection, metric_drop, select

__all__ = [
    "BASELINE",
    "QUANTIZERS",
    "Candidate",
    "Latency",
    "Plan",
    "Quantizer",
    "Selection",
    "calibration_rows",
    "compress_model",
    "distill",
    "latencies",
    "latency",
    "low_rank",
    "magnitude_prune",
    "metric_drop",
    "quantize",
    "select",
    "sequences",
    "size_bytes",
    "static_quantize",
    "structured_prune",
]
