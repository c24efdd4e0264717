"""Many models' first checks are spread over the first interval, not all due at once."""

from __future__ import annotations

from datetime import timedelta

from reoptd.service import stagger


def test_first_checks_spread_over_the_first_interval_at_most_a_minute() -> None:
    starts = [stagger(i, 1000, 60.0) for i in range(1000)]
    assert starts[0] == timedelta(0)
    assert starts == sorted(starts) and len(set(starts)) == 1000
    assert max(starts) < timedelta(seconds=60)
    # a one-day interval still starts every model within the first minute
    assert stagger(999, 1000, 86400.0) < timedelta(seconds=60)
    # a fast interval (a simulated clock) is spread over that interval only
    assert stagger(1, 2, 0.6) == timedelta(seconds=0.3)
