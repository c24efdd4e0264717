"""Runs as durable jobs under the control plane: a check queues the run and returns while the
executor works; the dispatcher claims no more runs than the executor's capacity; the control
plane records the result and promotes."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.cycle.dispatch import Dispatcher
from reoptd.data import demo
from reoptd.metrics import Metrics
from reoptd.optimize import Execution, Executor, InlineExecutor, RunContext
from reoptd.policy import Policy
from reoptd.store import Store


class Gated(Executor):
    """The executor contract around the inline executor: each run waits for ``release`` (so
    the test sees what happens while a training is under way)."""

    name = "gated"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: list[str] = []

    def submit(self, ctx: RunContext) -> Execution:
        self.started.append(ctx.policy.model)
        return _Held(InlineExecutor().submit(ctx), self.release)

    def shutdown(self) -> None:
        self.release.set()


class _Held(Execution):
    def __init__(self, inner: Execution, release: threading.Event) -> None:
        self.inner, self.release = inner, release

    def done(self) -> bool:
        return False

    def result(self) -> dict[str, dict[str, Any]]:
        assert self.release.wait(60)
        return self.inner.result()

    def cancel(self, reason: str) -> None:
        self.inner.cancel(reason)


def _until(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_check_queues_the_run_and_returns_while_the_executor_works(
    memory_store: Store, demo_policy: Policy, clock: SimulatedClock, metrics: Metrics
) -> None:
    gated = Gated()
    other = demo_policy.model_copy(update={"model": "second_model"})
    loops = [ModelLoop(p, memory_store, metrics, executor=gated) for p in (demo_policy, other)]
    dispatcher = Dispatcher(loops, clock)
    assert dispatcher.capacity == 1  # the gated executor's
    for loop in loops:
        loop.dispatch = dispatcher.poke
        loop.start()
    clock.set(demo.START + demo_policy.train.window)
    try:
        first = loops[0].cycle(clock.now())  # bootstrap: queued, handed over, returned
        assert first.run is not None and first.run.outcome in ("queued", "running")
        assert first.run.job["model"] == demo_policy.model
        assert first.run.job["policy"]["model"] == demo_policy.model
        _until(lambda: gated.started == [demo_policy.model])
        second = loops[1].cycle(clock.now())  # capacity 1: it waits in the queue
        assert second.run is not None and second.run.outcome == "queued"
        # the check thread is free: another cycle of the first model runs now, and does not
        # start its run twice
        again = loops[0].cycle(clock.now())
        assert again.run is not None and again.run.id == first.run.id
        assert [r.outcome for r in memory_store.runs(demo_policy.model)] == ["running"]
        assert dispatcher.running == 1 and gated.started == [demo_policy.model]
        gated.release.set()
        _until(
            lambda: (
                dispatcher.running == 0 and gated.started == [p.model for p in (demo_policy, other)]
            )
        )
    finally:
        dispatcher.shutdown()
    for policy in (demo_policy, other):
        (run,) = memory_store.runs(policy.model)
        assert run.outcome == "promoted" and run.challenger_version == 1, run.reason
        assert run.owner == memory_store.owner and run.attempts == 1 and run.lease_until is None
        assert memory_store.model(policy.model).champion_version == 1


def test_a_run_queued_for_an_older_champion_fails_with_the_reason(
    memory_store: Store, demo_policy: Policy, clock: SimulatedClock, metrics: Metrics
) -> None:
    loop = ModelLoop(demo_policy, memory_store, metrics, executor=InlineExecutor())
    loop.start()
    clock.set(demo.START + demo_policy.train.window)
    assert loop.optimize(clock.now(), trigger="bootstrap").outcome == "promoted"
    queued = loop.enqueue(clock.now(), trigger="manual")
    assert queued.outcome == "queued" and queued.champion_version == 1
    assert loop.optimize(clock.now(), trigger="manual").challenger_version == 2  # runs `queued`
    if memory_store.model(demo_policy.model).champion_version != 1:  # v2 may have won
        memory_store.promote(demo_policy.model, 1, at=clock.now(), reason="operator")
    stale = loop.enqueue(clock.now(), trigger="manual")
    memory_store.promote(demo_policy.model, 2, at=clock.now(), reason="operator")
    claimed = memory_store.claim_run(run_id=stale.id)
    assert claimed is not None
    done = loop.execute(claimed)
    assert done.outcome == "failed" and "champion changed from v1 to v2" in done.reason
    assert [r.outcome for r in memory_store.runs(demo_policy.model)][-1] == "failed"


class Recording(Executor):
    """The inline executor, noting the data window's end (``ctx.now``) each run was given."""

    name = "recording"

    def __init__(self) -> None:
        self.windows: list[Any] = []

    def submit(self, ctx: RunContext) -> Execution:
        self.windows.append(ctx.now)
        return InlineExecutor().submit(ctx)

    def shutdown(self) -> None:
        """Nothing to stop."""


def test_a_run_resumed_after_a_restart_learns_from_the_window_ending_when_it_starts(
    memory_store: Store, demo_policy: Policy, clock: SimulatedClock, metrics: Metrics
) -> None:
    """Queued by one daemon, which then stopped; a new one claims it later. Within a check
    interval the decision's window stands; after more, the window ends at the clock's time."""
    recording = Recording()
    loop = ModelLoop(demo_policy, memory_store, metrics, executor=recording)
    queued_at = demo.START + demo_policy.train.window
    clock.set(queued_at)
    first = loop.enqueue(clock.now(), trigger="bootstrap")
    # a restart soon after: less than one check interval (monitor.every: 30m) has passed
    clock.set(queued_at + demo_policy.monitor.every / 2)
    restarted = Dispatcher([loop], clock)
    try:
        assert [r.id for r in restarted.poke()] == [first.id]
        _until(lambda: restarted.running == 0)
    finally:
        restarted.shutdown()
    done = memory_store.run(loop.name, first.id)
    assert done.outcome == "promoted", done.reason
    assert recording.windows == [queued_at]  # the rows its decision saw
    assert done.finished_at == clock.now()

    # queued again, then the daemon is down for three hours (six check intervals)
    queued_at = clock.now()
    second = loop.enqueue(queued_at, trigger="manual")
    clock.advance(timedelta(hours=3))
    restarted = Dispatcher([loop], clock)
    try:
        assert [r.id for r in restarted.poke()] == [second.id]
        _until(lambda: restarted.running == 0)
    finally:
        restarted.shutdown()
    done = memory_store.run(loop.name, second.id)
    assert done.outcome != "failed" and done.challenger_version is not None, done.reason
    assert done.job["now"] == queued_at.isoformat()  # the job as queued is kept
    assert recording.windows[1] == clock.now()  # the window moved to when it started
    version = memory_store.version(loop.name, done.challenger_version)
    assert version.created_at == clock.now()
