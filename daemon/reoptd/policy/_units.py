"""Friendly units in policy files: durations (``15m``), fractions (``20%``)."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?i?[bB])?\s*$")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_MAX_SECONDS = 100 * 365 * 86400


def parse_duration(value: Any) -> timedelta:
    """``"15m"``, ``"6h"``, ``"30d"``, ``"1w"``, ``"45s"``, ``"5ms"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration like 15m, 6h or 30d")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("expected a duration like 15m, 6h or 30d")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if not math.isfinite(seconds) or seconds > _MAX_SECONDS:
        raise ValueError("a duration must be finite and at most 100 years")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    total = delta.total_seconds()
    if 0 < total < 1:
        return f"{total * 1000:g}ms"
    if total != int(total):  # keep fractions: a dumped policy must load back identical
        return f"{total:.6f}".rstrip("0").rstrip(".") + "s"
    seconds = int(total)
    for unit in ("w", "d", "h", "m"):
        size = int(_UNIT_SECONDS[unit])
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_size(value: Any) -> int:
    """``"50MB"``, ``"1.5GiB"``, ``"200kB"`` or a number of bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 50MB or 1GiB")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError("expected a size like 50MB or 1GiB")
        number = float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()]
    if not math.isfinite(number) or number < 0:
        raise ValueError("a size must be a positive, finite number of bytes")
    return int(number)


def format_size(size: int) -> str:
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= factor:
            return f"{size / factor:g}{unit}"
    return f"{size}B"


def parse_fraction(value: Any) -> float:
    """``"20%"`` or ``0.2``; must lie in [0, 1]."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError("expected a fraction like 0.2 or 20%") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError("expected a fraction like 0.2 or 20%")
    if not 0 <= number <= 1:
        raise ValueError("expected a fraction between 0 and 1 (0%-100%)")
    return number


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": ["string", "number"],
            "pattern": _DURATION.pattern,
            "minimum": 0,
            "maximum": _MAX_SECONDS,
            "description": "a duration: 45s, 15m, 6h, 30d, 1w, or seconds",
        }
    ),
]

Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "type": ["string", "number"],
            "pattern": _SIZE.pattern,
            "minimum": 0,
            "description": "a size: 200kB, 50MB, 1GiB, or bytes",
        }
    ),
]

Fraction = Annotated[
    float,
    BeforeValidator(parse_fraction),
    WithJsonSchema(
        {
            "type": ["string", "number"],
            "pattern": r"^\s*(100(\.0*)?|\d{1,2}(\.\d*)?|\.\d+)\s*%\s*$",
            "minimum": 0,
            "maximum": 1,
            "description": "a fraction: 0.2 or 20%",
        }
    ),
]
