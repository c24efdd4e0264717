"""A check that comes due while the model's previous cycle still runs is skipped by APScheduler
(max_instances=1): the service logs it once, in the daemon's clock, and counts it."""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import datetime

import pytest

from reoptd.clock import AcceleratedClock
from reoptd.cycle import CycleOutcome, ModelLoop
from reoptd.data import demo
from reoptd.metrics import Metrics
from reoptd.policy import Policy
from reoptd.service import Service
from reoptd.store import MemoryStore


class SlowLoop(ModelLoop):
    """A model whose first cycle lasts until the test releases it (a long re-optimization)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.release = threading.Event()
        self.cycles = 0

    def cycle(self, now: datetime) -> CycleOutcome:
        self.cycles += 1
        if self.cycles == 1:
            assert self.release.wait(timeout=60), "the test never released the first cycle"
        return CycleOutcome()


def _wait(condition, what: str, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_check_due_during_a_long_cycle_is_logged_once_on_the_daemon_clock_and_counted(
    demo_policy: Policy, memory_store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = AcceleratedClock(demo.START, speed=3000)  # a 30 min check every 0.6 s
    metrics = Metrics()
    loop = SlowLoop(demo_policy, memory_store, metrics)
    service = Service([loop], clock, metrics, metrics_port=0)
    name = demo_policy.model

    def skipped() -> float:
        return metrics.registry.get_sample_value("reoptd_checks_skipped_total", {"model": name})

    service.start()
    try:
        assert skipped() == 0  # declared before any skip, so dashboards and alerts see it
        _wait(lambda: skipped() >= 3, "three skipped checks")
        loop.release.set()
        _wait(lambda: loop.cycles >= 2, "a check after the long cycle")
    finally:
        loop.release.set()
        service.stop()

    records = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert not [r for r in caplog.records if "maximum number of running" in r.getMessage()]
    (first,) = [r for r in records if r.getMessage().startswith(f"{name}: check at ")]
    assert (first.name, first.levelname) == ("reoptd.service", "INFO")
    message = first.getMessage()
    assert message.startswith(f"{name}: check at ")
    assert "the previous cycle (started " in message and "still runs" in message
    assert "reoptd_checks_skipped_total" in message
    stamps = [
        datetime.fromisoformat(t) for t in re.findall(r"\d{4}-\d\d-\d\d [\d:]{8}\+00:00", message)
    ]
    assert len(stamps) == 2  # when it was skipped, when the running cycle started
    # the daemon's clock (the demo's simulated days), not the wall clock
    assert all(demo.START <= stamp < clock.now() for stamp in stamps), message
    (resumed,) = [r.getMessage() for r in caplog.records if "checks resume at" in r.getMessage()]
    count = int(re.search(r"after (\d+) skipped", resumed)[1])  # type: ignore[index]
    assert count >= 3 and count == skipped()
