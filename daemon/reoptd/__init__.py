"""reoptd: a daemon that keeps production ML models optimized."""

from reoptd.clock import AcceleratedClock, Clock, SimulatedClock, SystemClock
from reoptd.errors import (
    ArtifactError,
    DataError,
    EmptyWindow,
    ModelNotFound,
    OptimizeError,
    PolicyError,
    ReoptdError,
    VersionNotFound,
)

__version__ = "0.1.0"

__all__ = [
    "AcceleratedClock",
    "ArtifactError",
    "Clock",
    "DataError",
    "EmptyWindow",
    "ModelNotFound",
    "OptimizeError",
    "PolicyError",
    "ReoptdError",
    "SimulatedClock",
    "SystemClock",
    "VersionNotFound",
    "__version__",
]
