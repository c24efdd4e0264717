"""The contract every ``Store`` implementation passes, as a pytest suite shipped in the package.

Who uses it: ``tests/store/test_store_contract.py`` runs it on ``MemoryStore``, ``SqlStore`` on
SQLite and ``SqlStore`` on PostgreSQL; a new backend runs it by subclassing ``StoreContract``
and providing one fixture, ``store_factory``: a callable that takes an ``ArtifactStore`` and
returns a new, empty store using it::

    class TestMyStoreContract(StoreContract):
        @pytest.fixture
        def store_factory(self, tmp_path):
            return lambda artifacts: MyStore(..., artifacts)

Every test is named ``test_contract_*`` so ``pytest -k contract`` selects the suite. What it
pins down: champion swaps and rollbacks (from/to versions, history), version visibility (only
after the artifacts are durably stored; a failed artifact write leaves no version), check
history (order, limit, ``update_check``), backfill candidates, ingestion all or nothing, run
interruption, concurrent promotions (a consistent chain of events), and that ``replay_states``
gives each past check the state ``state`` gave it live.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reoptd.errors import (
    ArtifactError,
    DuplicateIds,
    ModelNotFound,
    ReoptdError,
    VersionNotFound,
)
from reoptd.policy import ModelState, Policy, load_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import (
    INTERRUPTED,
    ArtifactStore,
    CheckRecord,
    EventRecord,
    IngestedLabel,
    IngestedPrediction,
    LocalArtifactStore,
    Store,
    VersionRecord,
)

__all__ = ["T0", "StoreContract", "StoreFactory"]

#: makes a new, empty store over the given artifacts
StoreFactory = Callable[[ArtifactStore], Store]

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
REFERENCE = b"PAR1 reference bytes"


class _Watched(LocalArtifactStore):
    """A local artifact store that calls ``during_put`` while it writes, or fails the write."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.during_put: Callable[[], None] | None = None
        self.fail: bool = False

    def put(self, data: bytes) -> str:
        if self.during_put is not None:
            self.during_put()
        if self.fail:
            raise OSError(28, "No space left on device")
        return super().put(data)


class StoreContract:
    """The suite; subclasses provide the ``store_factory`` fixture."""

    @pytest.fixture
    def artifacts(self, tmp_path: Path) -> _Watched:
        return _Watched(tmp_path / "contract-artifacts")

    @pytest.fixture
    def store(self, store_factory: StoreFactory, artifacts: _Watched) -> Iterator[Store]:
        made = store_factory(artifacts)
        yield made
        made.close()

    @pytest.fixture
    def policy(self) -> Policy:
        return load_policy(DEMO_POLICY)

    @pytest.fixture
    def name(self, store: Store, policy: Policy) -> str:
        store.ensure_model(policy, T0)
        return policy.model

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def add(store: Store, name: str, payload: bytes, **fields: object) -> VersionRecord:
        return store.add_version(
            name, model_bytes=payload, reference_bytes=REFERENCE, at=T0, **fields
        )

    @staticmethod
    def check(store: Store, name: str, at: datetime, **fields: object) -> CheckRecord:
        values: dict[str, object] = {
            "window_start": at - timedelta(hours=2),
            "window_end": at,
            "status": "ok",
            **fields,
        }
        return store.add_check(name, at=at, **values)  # type: ignore[arg-type]  # test values

    # -- the store itself ---------------------------------------------------------------------

    def test_contract_describes_itself_without_secrets(self, store: Store) -> None:
        store.ping()
        assert store.url and "secret" not in store.display_url
        assert store.optuna_storage is None or isinstance(store.optuna_storage, str)

    # -- models -------------------------------------------------------------------------------

    def test_contract_models_are_created_once_and_refreshed(
        self, store: Store, policy: Policy
    ) -> None:
        first = store.ensure_model(policy, T0)
        assert first.name == policy.model and first.champion_version is None
        assert first.created_at == T0 and first.policy["model"] == policy.model
        other = policy.model_copy(update={"model": "another", "task": "regression"})
        store.ensure_model(other, T0)
        again = store.ensure_model(policy, T0 + timedelta(days=1))
        assert again.id == first.id and again.created_at == T0
        assert [m.name for m in store.models()] == sorted([policy.model, "another"])
        assert store.model("another").task == "regression"
        with pytest.raises(ModelNotFound, match="'nope'"):
            store.model("nope")
        with pytest.raises(ModelNotFound):
            store.versions("nope")

    def test_contract_records_are_frozen_snapshots(self, store: Store, name: str) -> None:
        check = self.check(store, name, T0, metrics={"f1": 0.5})
        with pytest.raises(dataclasses.FrozenInstanceError):
            check.status = "failed"  # type: ignore[misc]  # the point of the test
        check.metrics["f1"] = 0.0  # a caller's copy: the stored check is unchanged
        assert store.checks(name)[-1].metrics == {"f1": 0.5}

    # -- versions -----------------------------------------------------------------------------

    def test_contract_versions_number_up_and_record_their_artifacts(
        self, store: Store, name: str, artifacts: _Watched
    ) -> None:
        v1 = self.add(store, name, b"one", trigger="bootstrap", params={"max_depth": 3})
        v2 = self.add(
            store, name, b"two", parent_version=1, metrics={"holdout": {"f1": 0.7}}, train_rows=9
        )
        assert (v1.version, v2.version) == (1, 2)
        assert v1.status == "candidate" and v1.params == {"max_depth": 3}
        assert v2.parent_version == 1 and v2.train_rows == 9
        assert v2.size_bytes == 3 and len(v2.sha256) == 64
        assert v2.artifact_path == artifacts.uri(v2.sha256)
        assert store.load_artifact(v2) == b"two" and store.load_reference(v2) == REFERENCE
        assert store.version(name, 2) == v2
        assert store.version(name, 2).created_at == T0
        assert [v.version for v in store.versions(name)] == [1, 2]
        with pytest.raises(VersionNotFound, match="no version 7"):
            store.version(name, 7)
        rejected = store.set_status(name, 2, "rejected", note="worse")
        assert rejected.status == "rejected" and rejected.metrics["note"] == "worse"
        assert rejected.metrics["holdout"] == {"f1": 0.7}

    def test_contract_a_version_appears_only_after_its_artifacts_are_stored(
        self, store: Store, name: str, artifacts: _Watched
    ) -> None:
        seen: list[int] = []
        artifacts.during_put = lambda: seen.append(len(store.versions(name)))
        version = self.add(store, name, b"model bytes")
        assert seen == [0, 0]  # both artifacts written before the version was visible
        assert artifacts.exists(version.sha256) and artifacts.exists(version.reference_sha256)

    def test_contract_a_failed_artifact_write_leaves_no_version(
        self, store: Store, name: str, artifacts: _Watched
    ) -> None:
        artifacts.fail = True
        with pytest.raises(OSError):
            self.add(store, name, b"half written")
        artifacts.fail = False
        assert store.versions(name) == []
        assert self.add(store, name, b"next").version == 1

    # -- champion changes ---------------------------------------------------------------------

    def test_contract_champion_swaps_and_rollbacks(self, store: Store, name: str) -> None:
        for payload in (b"one", b"two", b"three"):
            self.add(store, name, payload)
        first = store.promote(name, 1, at=T0, reason="first")
        assert (first.kind, first.from_version, first.to_version) == ("promote", None, 1)
        store.promote(name, 2, at=T0 + timedelta(hours=1))
        event = store.promote(name, 3, at=T0 + timedelta(hours=2), reason="better")
        assert (event.from_version, event.to_version, event.reason) == (2, 3, "better")
        assert store.model(name).champion_version == 3
        assert store.model(name).champion_since == T0 + timedelta(hours=2)
        assert [v.status for v in store.versions(name)] == ["retired", "retired", "champion"]
        assert store.champion(name) == store.version(name, 3)

        back = store.rollback(name, at=T0 + timedelta(hours=3), reason="bad")
        assert (back.kind, back.from_version, back.to_version) == ("rollback", 3, 2)
        assert store.model(name).champion_version == 2
        assert [v.status for v in store.versions(name)] == ["retired", "champion", "retired"]
        # the champion before the current one (v2) was v3: a second rollback undoes the first
        again = store.rollback(name, at=T0 + timedelta(hours=4))
        assert (again.from_version, again.to_version) == (2, 3)
        kinds = [(e.kind, e.from_version, e.to_version) for e in store.events(name)]
        assert kinds == [
            ("promote", None, 1),
            ("promote", 1, 2),
            ("promote", 2, 3),
            ("rollback", 3, 2),
            ("rollback", 2, 3),
        ]

    def test_contract_refused_swaps_change_nothing(
        self, store: Store, name: str, artifacts: _Watched
    ) -> None:
        self.add(store, name, b"one")
        with pytest.raises(ReoptdError, match="no earlier champion"):
            store.rollback(name, at=T0)
        store.promote(name, 1, at=T0)
        with pytest.raises(ReoptdError, match="no earlier champion"):
            store.rollback(name, at=T0)
        with pytest.raises(ReoptdError, match="already the champion"):
            store.promote(name, 1, at=T0)
        with pytest.raises(VersionNotFound):
            store.promote(name, 7, at=T0)
        v2 = self.add(store, name, b"will be corrupted")
        artifacts.path(v2.sha256).write_bytes(b"tampered")
        with pytest.raises(ArtifactError, match="corrupt"):
            store.promote(name, 2, at=T0)
        with pytest.raises(ArtifactError):
            store.load_artifact(v2)
        assert store.model(name).champion_version == 1
        assert len(store.events(name)) == 1
        assert [v.status for v in store.versions(name)] == ["champion", "candidate"]

    def test_contract_listeners_hear_every_committed_swap(self, store: Store, name: str) -> None:
        heard: list[tuple[str, EventRecord]] = []

        def broken(_name: str, _event: EventRecord) -> None:
            raise RuntimeError("a listener's bug must not undo a swap")

        store.listeners.extend([broken, lambda n, e: heard.append((n, e))])
        self.add(store, name, b"one")
        self.add(store, name, b"two")
        promoted = store.promote(name, 1, at=T0)
        store.promote(name, 2, at=T0)
        rolled = store.rollback(name, at=T0)
        with pytest.raises(ReoptdError):
            store.promote(name, 1, at=T0)  # already the champion: no event, nothing heard
        assert [e for _, e in heard] == [promoted, store.events(name)[1], rolled]
        assert {n for n, _ in heard} == {name}

    def test_contract_approve_promotes_the_newest_pending_version(
        self, store: Store, name: str
    ) -> None:
        for payload in (b"one", b"two", b"three"):
            self.add(store, name, payload)
        store.promote(name, 1, at=T0)
        with pytest.raises(ReoptdError, match="no version waiting"):
            store.approve(name, None, at=T0, reason="")
        store.set_status(name, 2, "pending")
        store.set_status(name, 3, "pending")
        assert [v.version for v in store.pending(name)] == [2, 3]
        with pytest.raises(ReoptdError, match="not waiting"):
            store.approve(name, 1, at=T0, reason="")
        event = store.approve(name, None, at=T0, reason="looks good")
        assert (event.from_version, event.to_version, event.reason) == (1, 3, "looks good")
        assert [v.version for v in store.pending(name)] == [2]

    def test_contract_concurrent_promotions_keep_one_chain(self, store: Store, name: str) -> None:
        for i in range(4):
            self.add(store, name, b"version %d" % i)
        store.promote(name, 1, at=T0)
        errors: list[BaseException] = []

        def work(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(8):
                try:
                    if rng.random() < 0.3:
                        store.rollback(name, at=T0)
                    else:
                        store.promote(name, rng.randint(1, 4), at=T0)
                except ReoptdError as exc:  # already champion / nothing to roll back to
                    if "already the champion" not in str(exc) and "no earlier" not in str(exc):
                        errors.append(exc)
                except BaseException as exc:  # anything else breaks the contract
                    errors.append(exc)

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        events = store.events(name)
        assert len(events) > 1
        for before, after in itertools.pairwise(events):
            assert after.from_version == before.to_version, (before, after)
            assert after.from_version != after.to_version
        champion = store.model(name).champion_version
        assert champion == events[-1].to_version
        assert [v.version for v in store.versions(name) if v.status == "champion"] == [champion]

    # -- checks -------------------------------------------------------------------------------

    def test_contract_check_history_order_limit_and_updates(self, store: Store, name: str) -> None:
        for minutes in (30, 0, 90, 60):  # recorded out of order: read back by time
            self.check(store, name, T0 + timedelta(minutes=minutes), drift_share=minutes / 100)
        tie = self.check(store, name, T0 + timedelta(minutes=90), drift_share=0.95)
        assert [c.drift_share for c in store.checks(name)] == [0.0, 0.3, 0.6, 0.9, 0.95]
        assert [c.drift_share for c in store.checks(name, limit=2)] == [0.9, 0.95]
        assert store.checks(name)[-1].at.tzinfo is not None
        assert tie.id is not None
        signals = {"backfill": {"tried": T0.isoformat()}}
        updated = store.update_check(tie.id, metrics={"f1": 0.8}, labelled_rows=12, signals=signals)
        assert updated.metrics == {"f1": 0.8} and updated.labelled_rows == 12
        assert updated.signals == signals
        assert updated.drift_share == 0.95 and updated.at == tie.at
        assert store.checks(name, limit=1) == [updated]
        with pytest.raises(ReoptdError, match="cannot change at"):
            store.update_check(tie.id, at=T0)
        with pytest.raises(ReoptdError):
            store.update_check(10**9, metrics={})
        view = store.history(name, limit=1)[-1]
        assert view.metrics == {"f1": 0.8} and view.labelled_rows == 12

    def test_contract_backfill_sees_ok_checks_still_missing_labels(
        self, store: Store, name: str
    ) -> None:
        waiting = self.check(store, name, T0, rows=100, labelled_rows=10)
        self.check(store, name, T0 + timedelta(hours=1), rows=100, labelled_rows=100)
        self.check(store, name, T0 + timedelta(hours=2), status="failed", rows=100)
        self.check(store, name, T0 - timedelta(days=2), rows=100)  # before the horizon
        later = self.check(store, name, T0 + timedelta(hours=3), rows=50)
        found = store.waiting_checks(name, T0 - timedelta(days=1), T0 + timedelta(hours=3))
        assert [c.id for c in found] == [waiting.id]  # ``until`` is exclusive
        assert waiting.id is not None
        store.update_check(waiting.id, labelled_rows=100, metrics={"f1": 0.9})
        found = store.waiting_checks(name, T0 - timedelta(days=1), T0 + timedelta(hours=4))
        assert [c.id for c in found] == [later.id]

    # -- decisions and runs -------------------------------------------------------------------

    def test_contract_decisions_in_order(self, store: Store, name: str) -> None:
        assert store.last_decision(name) is None
        first = self.check(store, name, T0)
        for i, fire in enumerate((False, True, False)):
            store.add_decision(
                name,
                check_id=first.id,
                at=T0 + timedelta(minutes=i),
                fire=fire,
                triggers=["drift_share"] if fire else [],
                reasons=f"decision {i}",
            )
        assert [d.reasons for d in store.decisions(name)] == [f"decision {i}" for i in range(3)]
        assert [d.reasons for d in store.decisions(name, limit=2)] == ["decision 1", "decision 2"]
        last = store.last_decision(name)
        assert last is not None and last.reasons == "decision 2" and last.check_id == first.id
        assert store.decisions(name)[1].triggers == ["drift_share"]

    def test_contract_runs_finish_or_are_closed_as_interrupted(
        self, store: Store, name: str
    ) -> None:
        assert store.close_interrupted_runs("never-seen") == 0
        done = store.start_run(name, started_at=T0, trigger="bootstrap")
        assert done.outcome == "running" and done.id is not None
        finished = store.finish_run(
            done.id,
            finished_at=T0 + timedelta(minutes=5),
            outcome="promoted",
            reason="won",
            challenger_version=1,
            steps={"retrain": {"seconds": 0.5}},
            seconds=300.0,
        )
        assert finished.steps == {"retrain": {"seconds": 0.5}} and finished.challenger_version == 1
        cut = store.start_run(name, started_at=T0 + timedelta(hours=1), trigger="drift_share")
        assert store.close_interrupted_runs(name) == 1
        assert store.close_interrupted_runs(name) == 0
        runs = store.runs(name)
        assert [r.id for r in runs] == [done.id, cut.id]
        assert runs[0] == finished
        assert runs[1].outcome == "failed" and runs[1].reason == INTERRUPTED
        with pytest.raises(ReoptdError):
            store.finish_run(10**9, finished_at=T0, outcome="failed")
        assert {r.owner for r in runs} == {store.owner}

    def test_contract_a_run_is_queued_once_and_claimed_once(
        self, store: Store, name: str, policy: Policy
    ) -> None:
        job = {"now": T0.isoformat(), "policy": {"model": name}, "trigger": "drift_share"}
        queued = store.enqueue_run(name, at=T0, trigger="drift_share", job=job, decision_id=None)
        assert queued.outcome == "queued" and queued.job == job and queued.attempts == 0
        again = store.enqueue_run(name, at=T0 + timedelta(hours=1), trigger="manual", job={})
        assert again.id == queued.id and len(store.runs(name)) == 1  # one active run per model
        assert store.claim_run(models=["another-model"]) is None
        claimed = store.claim_run(models=[name])
        assert claimed is not None and claimed.id == queued.id
        assert claimed.outcome == "running" and claimed.owner == store.owner
        assert claimed.attempts == 1 and claimed.lease_until is not None
        assert claimed.lease_until > datetime.now(UTC)
        assert store.claim_run() is None  # taken: nobody gets it twice
        assert store.renew_run(claimed.id or 0)
        assert store.expire_runs() == []  # a live lease
        assert claimed.id is not None
        done = store.finish_run(claimed.id, finished_at=T0, outcome="promoted", reason="won")
        assert done.lease_until is None and done.outcome == "promoted" and done.job == job
        assert not store.renew_run(claimed.id)  # finished: nothing to renew
        assert store.run(name, claimed.id) == done
        fresh = store.enqueue_run(name, at=T0, trigger="manual", job={})
        assert fresh.id != queued.id and store.claim_run(run_id=fresh.id) is not None

    def test_contract_concurrent_claims_hand_each_run_to_one_claimant(
        self, store: Store, name: str, policy: Policy
    ) -> None:
        names = [name] + [f"{name}-{i}" for i in range(3)]
        for other in names[1:]:
            store.ensure_model(policy.model_copy(update={"model": other}), T0)
        queued = {store.enqueue_run(n, at=T0, trigger="manual", job={}).id for n in names}
        got: list[int | None] = []
        barrier = threading.Barrier(8)

        def claim() -> None:
            barrier.wait()
            while (run := store.claim_run(models=names)) is not None:
                got.append(run.id)

        threads = [threading.Thread(target=claim) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(got, key=str) == sorted(queued, key=str)  # each exactly once

    def test_contract_an_expired_lease_requeues_then_fails_the_run(
        self, store: Store, name: str
    ) -> None:
        run = store.enqueue_run(name, at=T0, trigger="drift_share", job={"now": "x"})
        assert run.id is not None
        for attempt in (1, 2):
            claimed = store.claim_run(run_id=run.id, lease=timedelta(seconds=-1))
            assert claimed is not None and claimed.attempts == attempt
            (expired,) = store.expire_runs(max_attempts=3)
            assert expired.outcome == "queued" and f"attempt {attempt}" in expired.reason
            assert not store.renew_run(run.id)  # the lost executor learns it
        assert store.claim_run(run_id=run.id, lease=timedelta(seconds=-1)) is not None
        (failed,) = store.expire_runs(max_attempts=3)
        assert failed.outcome == "failed" and "attempt 3 of 3" in failed.reason
        assert store.expire_runs() == [] and store.claim_run() is None
        assert [r.outcome for r in store.runs(name)] == ["failed"]

    def test_contract_a_dead_claimants_run_is_requeued(self, store: Store, name: str) -> None:
        mine = store.owner
        run = store.enqueue_run(name, at=T0, trigger="manual", job={})
        store.owner = "ghost-host:4242:dead0000"  # a claimant that never renews its process lease
        try:
            claimed = store.claim_run()
        finally:
            store.owner = mine
        assert claimed is not None and claimed.owner == "ghost-host:4242:dead0000"
        (requeued,) = store.expire_runs()
        assert requeued.id == run.id and requeued.outcome == "queued"
        assert "ghost-host:4242:dead0000" in requeued.reason

    def test_contract_a_model_is_owned_by_one_live_replica(self, store: Store, name: str) -> None:
        mine, other = store.owner, "other-host:77:replica2"
        assert store.own_model(name) is None and store.own_model(name) is None
        assert store.model_owners() == {name: mine}
        store.owner = other  # a replica on another host, alive (it renews its lease)
        try:
            store.heartbeat()
            assert store.own_model(name) is None  # ours was not renewed: taken over
        finally:
            store.owner = mine
        assert store.model_owners() == {name: other}
        assert store.own_model(name) == other  # a live owner keeps it
        store.disown_model(name)  # not ours: nothing changes
        assert store.model_owners() == {name: other}
        store.owner = other
        try:
            store.disown_model(name)
        finally:
            store.owner = mine
        assert store.model_owners() == {} and store.own_model(name) is None

    # -- processes, model locks, the daemon's clock ---------------------------------------------

    def test_contract_a_model_lock_is_held_released_and_taken_again(
        self, store: Store, name: str
    ) -> None:
        with store.model_lock(name):
            assert store._try_lock(name) is None  # the holder may take it again
            (me,) = [p for p in store.processes() if p.owner == store.owner]
            assert me.pid == os.getpid() and me.clock_at is None
        with store.model_lock(name, wait=1.0):
            pass
        store.unlock_model("never-locked")  # nothing to release: no error

    def test_contract_the_daemon_clock_is_recorded_and_extrapolated(self, store: Store) -> None:
        assert store.daemon_clock() is None  # no daemon recorded a clock: the system clock
        store.heartbeat(clock_at=T0, speed=0.0)  # a simulated clock standing still
        assert store.daemon_clock() == T0
        store.heartbeat()  # a renewal without a reading keeps the last reading
        assert store.daemon_clock() == T0
        store.heartbeat(clock_at=T0 + timedelta(hours=1), speed=3600.0)
        now = store.daemon_clock()
        assert now is not None and T0 + timedelta(hours=1) <= now < T0 + timedelta(days=2)
        store.heartbeat(clock_at=T0, speed=None)  # the system clock: nothing to share
        assert store.daemon_clock() is None

    # -- what decide sees ---------------------------------------------------------------------

    def test_contract_state_counts_runs_of_the_last_day(self, store: Store, name: str) -> None:
        self.add(store, name, b"one", metrics={"holdout": {"f1": 0.75}})
        store.promote(name, 1, at=T0)
        store.start_run(name, started_at=T0 - timedelta(hours=1), trigger="bootstrap")
        run = store.start_run(name, started_at=T0, trigger="drift_share")
        assert run.id is not None
        store.finish_run(run.id, finished_at=T0, outcome="rejected", seconds=2.5)
        state = store.state(name, T0 + timedelta(hours=1))
        assert state.champion_version == 1 and state.champion_since == T0
        assert state.last_run_at == T0 and state.runs_last_day == 1
        assert state.compute_last_day == 2.5 and state.champion_metrics == {"f1": 0.75}
        assert store.state(name, T0 + timedelta(days=2)).runs_last_day == 0

    def test_contract_replay_gives_each_check_the_state_it_had_live(
        self, store: Store, name: str
    ) -> None:
        """``policy explain --history`` must judge a check as the cycle did, ``last_decision_at``
        (what a ``schedule`` trigger needs) included."""
        self.add(store, name, b"v1", metrics={"holdout": {"f1": 0.7}})
        store.start_run(name, started_at=T0 - timedelta(hours=1), trigger="bootstrap")
        store.promote(name, 1, at=T0 - timedelta(hours=1))
        live: list[ModelState] = []
        at = T0
        for i in range(12):
            status = "skipped" if i % 4 == 3 else "ok"  # no decision after a skipped check
            check = self.check(
                store, name, at, status=status, champion_version=store.model(name).champion_version
            )
            live.append(store.state(name, at))  # as the cycle reads it, before deciding
            if status == "ok":
                fire = i % 5 == 1
                store.add_decision(
                    name, check_id=check.id, at=at, fire=fire, triggers=[], reasons=""
                )
                if fire:  # a run, and a new champion, at the same instant
                    run = store.start_run(name, started_at=at, trigger="drift_share")
                    assert run.id is not None
                    store.finish_run(run.id, finished_at=at, outcome="promoted", seconds=1.5)
                    version = self.add(
                        store, name, b"v%d" % (i + 2), metrics={"holdout": {"f1": 0.7 + i / 100}}
                    )
                    store.promote(name, version.version, at=at)
            at += timedelta(hours=7)
        replayed = store.replay_states(name, limit=50)
        assert [s for _, s in replayed] == live
        assert [c.status for c, _ in replayed] == [
            "skipped" if i % 4 == 3 else "ok" for i in range(12)
        ]
        assert any(s.last_decision_at is not None for _, s in replayed)
        assert [s for _, s in store.replay_states(name, limit=5)] == live[-5:]

    # -- ingested rows ------------------------------------------------------------------------

    def test_contract_ingest_is_all_or_nothing(self, store: Store, name: str) -> None:
        rows = [
            IngestedPrediction(str(i), T0 + timedelta(minutes=i), {"tenure": float(i)})
            for i in range(3)
        ]
        assert store.add_predictions(name, rows, at=T0) == 3
        batch = [
            IngestedPrediction("new", T0, {"tenure": 1.0}),
            IngestedPrediction("1", T0, {"tenure": 1.0}),  # stored before
        ]
        with pytest.raises(DuplicateIds) as refused:
            store.add_predictions(name, batch, at=T0)
        assert refused.value.ids == ["1"] and not refused.value.concurrent
        twice = [IngestedPrediction("x", T0, {}), IngestedPrediction("x", T0, {})]
        with pytest.raises(DuplicateIds):
            store.add_predictions(name, twice, at=T0)
        assert store.count_ingested(name) == (3, 0)
        assert store.add_labels(name, [IngestedLabel("0", 1.0), IngestedLabel("2", "yes")], at=T0)
        with pytest.raises(DuplicateIds):
            store.add_labels(name, [IngestedLabel("9", 0.0), IngestedLabel("2", 0.0)], at=T0)
        assert store.count_ingested(name) == (3, 2)
        with pytest.raises(ModelNotFound):
            store.add_predictions("nope", rows, at=T0)

    def test_contract_ingested_window_joins_labels(self, store: Store, name: str) -> None:
        rows = [
            IngestedPrediction(str(i), T0 + timedelta(minutes=10 * i), {"tenure": float(i)})
            for i in (3, 0, 2, 1)  # stored out of order: read back by time
        ]
        store.add_predictions(name, rows, at=T0)
        store.add_labels(name, [IngestedLabel("1", 1.0), IngestedLabel("2", "no")], at=T0)
        window = store.ingested(name, T0 + timedelta(minutes=10), T0 + timedelta(minutes=30))
        assert [(r.row_id, r.label) for r in window] == [("1", 1.0), ("2", "no")]
        assert window[0].ts == T0 + timedelta(minutes=10) and window[0].features == {"tenure": 1.0}
        everything = store.ingested(name, T0, T0 + timedelta(hours=1))
        assert [(r.row_id, r.label) for r in everything][::3] == [("0", None), ("3", None)]

    # -- scrape-time summaries ----------------------------------------------------------------

    def test_contract_summaries_agree_with_the_details(
        self, store: Store, name: str, policy: Policy
    ) -> None:
        store.ensure_model(policy.model_copy(update={"model": "empty"}), T0)
        for i in range(4):
            latency = {"latency_seconds": 0.001 * (i + 1)}
            self.add(
                store, name, b"v%d" % i, metrics=latency, trigger=("bootstrap", "drift")[i > 0]
            )
        store.promote(name, 1, at=T0, reason="first")
        store.promote(name, 3, at=T0 + timedelta(hours=1), reason="better")
        assert {s.name: s for s in store.champion_summaries()}[name].champion_reason == "better"
        store.rollback(name, at=T0 + timedelta(hours=2), reason="worse in production")
        store.set_status(name, 4, "pending")
        summaries = {s.name: s for s in store.champion_summaries()}
        assert set(summaries) == {name, "empty"}
        mine = summaries[name]
        assert (mine.champion_version, mine.champion_since) == (1, T0 + timedelta(hours=2))
        assert (mine.versions, mine.pending, mine.promotions, mine.rollbacks) == (4, 1, 2, 1)
        assert mine.champion_size_bytes == 2 and mine.champion_latency_seconds == 0.001
        # why v1 serves: the rollback that made it champion again, not its first promotion
        assert (mine.champion_trigger, mine.champion_reason) == ("bootstrap", "worse in production")
        empty = summaries["empty"]
        assert empty.champion_version is None and empty.versions == 0 and empty.promotions == 0
        assert (empty.champion_trigger, empty.champion_reason) == ("", "")
        recent = store.recent_versions(3)
        assert [v.version for v in recent[name]] == [2, 3, 4]
        assert recent[name] == store.versions(name)[-3:]
        assert recent.get("empty", []) == []
