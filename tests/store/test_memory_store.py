"""The loop on the in-memory store, and `policy explain --history`'s replay against what the
loop decided live (the two read the same state, `last_decision_at` included)."""

from __future__ import annotations

from datetime import timedelta

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.metrics import Metrics
from reoptd.policy import Policy, decide, parse_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import MemoryStore, check_view, open_store


def test_the_loop_runs_on_the_memory_store_and_replay_decides_as_it_did(
    memory_store: MemoryStore, clock: SimulatedClock, metrics: Metrics
) -> None:
    text = DEMO_POLICY.read_text().replace(
        "  - max_age: 7d\n", "  - max_age: 7d\n  - schedule: '15 * * * *'\n"
    )
    policy = parse_policy(text, "scheduled.yaml")
    assert any(t.kind == "schedule" for t in policy.triggers)
    metrics.watch_champions(memory_store, clock)
    loop = ModelLoop(policy, memory_store, metrics)
    loop.start()
    # bootstrap without a check (a first cycle would also check, a check with no decision)
    loop.optimize(clock.now(), trigger="bootstrap")
    clock.advance(policy.monitor.every)
    for _ in range(7):
        loop.cycle(clock.now())
        clock.advance(policy.monitor.every)
    name = policy.model
    assert memory_store.model(name).champion_version is not None
    assert memory_store.runs(name)[0].trigger == "bootstrap"
    checks = memory_store.checks(name, limit=100)
    assert len(checks) == 7 and all(c.status == "ok" for c in checks)
    assert metrics.registry.get_sample_value("reoptd_model_versions", {"model": name}) == len(
        memory_store.versions(name)
    )

    live = {d.check_id: d for d in memory_store.decisions(name)}
    replay = memory_store.replay_states(name, limit=100)
    assert len(replay) == len(checks) == len(live)
    for index, ((view, state), check) in enumerate(zip(replay, checks, strict=True)):
        assert state.last_decision_at == (checks[index - 1].at if index else None)
        again = decide(policy, [v for v, _ in replay[: index + 1]], state, view.at)
        decided = live[check.id]
        # the same verdict; the reasons may quote a metric backfill re-scored since
        assert (again.fire, again.triggers) == (decided.fire, decided.triggers), view.at
    assert any("schedule" in d.triggers for d in live.values())


def test_open_store_chooses_the_backend_by_url(tmp_path) -> None:
    assert isinstance(open_store("memory://", tmp_path / "a"), MemoryStore)
    sql = open_store(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "a")
    assert type(sql).__name__ == "SqlStore" and sql.optuna_storage == sql.url
    sql.close()


def test_records_are_copied_in_and_out(
    memory_store: MemoryStore, clock: SimulatedClock, demo_policy: Policy
) -> None:
    """What a caller gives or gets back is its own: mutating it never changes stored state
    (the nested dicts and lists of a check's signals, a model's policy snapshot)."""
    name = demo_policy.model
    memory_store.ensure_model(demo_policy, clock.now())
    signals = {"estimated": {"f1": 0.5}, "data_problem": None, "new_rows": 3}
    features = {"x": {"score": 0.1, "drifted": False}}
    stored = memory_store.add_check(
        name,
        at=clock.now(),
        window_start=clock.now(),
        window_end=clock.now(),
        status="ok",
        features=features,
        signals=signals,
    )
    signals["estimated"]["f1"] = 0.9  # the caller's dict, after the write
    features["x"]["drifted"] = True
    stored.signals["estimated"]["recall"] = 0.1  # the record it got back
    read = memory_store.checks(name)[-1]
    read.features["x"]["score"] = 1.0  # a record read back
    again = memory_store.checks(name)[-1]
    assert again.signals == {"estimated": {"f1": 0.5}, "data_problem": None, "new_rows": 3}
    assert again.features == {"x": {"score": 0.1, "drifted": False}}
    assert again.at == clock.now() and again.id == stored.id

    view = memory_store.history(name)[-1]  # built from the stored check, sharing nothing
    assert view == check_view(again)
    view.metrics["f1"] = 0.0
    view.estimated["f1"] = 0.0
    assert memory_store.history(name) == [check_view(c) for c in memory_store.checks(name)]
    assert "f1" not in memory_store.checks(name)[-1].metrics
    assert memory_store.checks(name)[-1].signals["estimated"] == {"f1": 0.5}
    assert memory_store.champion(name) is None  # no version yet

    model = memory_store.model(name)
    model.policy["model"] = "renamed"
    model.policy["monitor"]["window"] = "1s"
    assert memory_store.model(name).policy == demo_policy.model_dump(mode="json", by_alias=True)


def test_checks_found_by_time_in_and_out_of_order(
    memory_store: MemoryStore, clock: SimulatedClock, demo_policy: Policy
) -> None:
    """Checks recorded in time order (a daemon's) are read by bisection, an update finds its
    check by id; once one arrives out of order, the same queries scan and sort. Either way
    they answer what filtering and sorting every check says."""
    name = demo_policy.model
    memory_store.ensure_model(demo_policy, clock.now())
    t0 = clock.now()

    def add(minutes: int, labelled: int) -> int:
        at = t0 + timedelta(minutes=minutes)
        stored = memory_store.add_check(
            name,
            at=at,
            window_start=at,
            window_end=at,
            status="ok",
            rows=10,
            labelled_rows=labelled,
        )
        assert stored.id is not None
        return stored.id

    def expected(since: int, until: int) -> list[int | None]:
        every = sorted(memory_store.checks(name, limit=10**6), key=lambda c: (c.at, c.id))
        low, high = t0 + timedelta(minutes=since), t0 + timedelta(minutes=until)
        return [c.id for c in every if low <= c.at < high and c.labelled_rows < c.rows]

    def waiting(since: int, until: int) -> list[int | None]:
        low, high = t0 + timedelta(minutes=since), t0 + timedelta(minutes=until)
        return [c.id for c in memory_store.waiting_checks(name, low, high)]

    ids = [add(m, 10 if m % 15 == 0 else 4) for m in range(0, 100, 5)]  # some still waiting
    memory_store.update_check(ids[4], labelled_rows=10)
    for since, until in ((0, 100), (12, 47), (15, 15), (-50, 3), (95, 200)):
        assert waiting(since, until) == expected(since, until)
    assert ids[4] not in waiting(0, 100) and ids[2] in waiting(0, 100)
    assert ids[3] not in waiting(0, 100)
    late = add(12, 0)  # recorded after the others, earlier in time
    assert [c.id for c in memory_store.checks(name, limit=3)] == ids[-3:]
    assert [c.id for c in memory_store.checks(name, limit=100)][3] == late
    for since, until in ((0, 100), (12, 47), (10, 13)):  # (in the order they were recorded)
        assert sorted(waiting(since, until)) == sorted(expected(since, until))
    assert late in waiting(10, 13)
    memory_store.update_check(late, labelled_rows=10)
    assert late not in waiting(0, 100)
