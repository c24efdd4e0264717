"""Where the loop gets the time from.

Nothing in the core reads the wall clock: the service, the backtester and the tests hand a
``Clock`` to every cycle. ``SystemClock`` is production, ``SimulatedClock`` is moved by hand
(tests, backtests), ``AcceleratedClock`` runs simulated time faster than real time (the demo).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime (naive values are taken to be UTC)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def real_seconds(self, delta: timedelta) -> float:
        """How many wall-clock seconds ``delta`` of this clock's time takes (for scheduling)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def real_seconds(self, delta: timedelta) -> float:
        return delta.total_seconds()


class SimulatedClock:
    """A clock that only moves when told to. Thread-safe."""

    def __init__(self, start: datetime) -> None:
        self._now = utc(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = utc(when)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def real_seconds(self, delta: timedelta) -> float:
        return delta.total_seconds()


class AcceleratedClock:
    """Simulated time that runs ``speed`` times faster than ``base``, starting at ``start``."""

    def __init__(self, start: datetime, speed: float, base: Clock | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be positive, got: {speed}")
        self.start = utc(start)
        self.speed = speed
        self._base = base or SystemClock()
        self._base_start = self._base.now()

    def now(self) -> datetime:
        return self.start + (self._base.now() - self._base_start) * self.speed

    def real_seconds(self, delta: timedelta) -> float:
        return delta.total_seconds() / self.speed
