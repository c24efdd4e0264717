"""The SQL store on SQLite and a real PostgreSQL (the `external` parameter): what only SQL
can show (a crash inside the transaction, restarts, an unreachable server, the number of
statements a scrape makes). What every store must do is in reoptd.testing.store_contract."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from reoptd.errors import (
    ArtifactError,
    ModelNotFound,
    ReoptdError,
    StoreUnavailable,
    VersionNotFound,
)
from reoptd.policy import Policy, load_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import Store
from reoptd.store.sql import SqlStore

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _reference() -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(buffer)
    return buffer.getvalue()


def _add(registry: Store, name: str, payload: bytes, at: datetime = T0, **fields):
    return registry.add_version(
        name, model_bytes=payload, reference_bytes=_reference(), at=at, **fields
    )


@pytest.fixture
def model(registry: Store, demo_policy: Policy) -> str:
    registry.ensure_model(demo_policy, T0)
    return demo_policy.model


def test_versions_number_up_and_record_their_artifact(registry: Store, model: str) -> None:
    v1 = _add(registry, model, b"model one", trigger="bootstrap", params={"max_depth": 3})
    v2 = _add(registry, model, b"model two", parent_version=1, trigger="drift_share")
    assert (v1.version, v2.version) == (1, 2)
    assert v1.status == "candidate" and v1.params == {"max_depth": 3}
    assert v2.parent_version == 1 and v2.trigger == "drift_share"
    assert v2.size_bytes == len(b"model two") and len(v2.sha256) == 64
    assert registry.load_artifact(v2) == b"model two"
    assert registry.version(model, 2).created_at == T0  # read back timezone-aware


def test_promote_and_rollback_change_the_champion(registry: Store, model: str) -> None:
    _add(registry, model, b"one")
    _add(registry, model, b"two")
    registry.promote(model, 1, at=T0, reason="first")
    event = registry.promote(model, 2, at=T0 + timedelta(hours=1), reason="better")
    assert (event.from_version, event.to_version) == (1, 2)
    assert registry.model(model).champion_version == 2
    assert registry.model(model).champion_since == T0 + timedelta(hours=1)
    assert [v.status for v in registry.versions(model)] == ["retired", "champion"]

    back = registry.rollback(model, at=T0 + timedelta(hours=2), reason="bad")
    assert (back.from_version, back.to_version, back.kind) == (2, 1, "rollback")
    assert registry.model(model).champion_version == 1
    assert [e.kind for e in registry.events(model)] == ["promote", "promote", "rollback"]


def test_rollback_without_history_is_refused(registry: Store, model: str) -> None:
    _add(registry, model, b"one")
    registry.promote(model, 1, at=T0)
    with pytest.raises(ReoptdError, match="no earlier champion"):
        registry.rollback(model, at=T0)


def test_unknown_names_are_clear_errors(registry: Store, model: str) -> None:
    with pytest.raises(ModelNotFound, match="'nope'"):
        registry.model("nope")
    with pytest.raises(VersionNotFound, match="no version 7"):
        registry.promote(model, 7, at=T0)


def test_crash_between_artifact_write_and_promotion_keeps_the_old_champion(
    registry: Store, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add(registry, model, b"champion")
    registry.promote(model, 1, at=T0)
    _add(registry, model, b"challenger")  # artifact and row written: the "crash" comes next

    # The process dies inside the promotion transaction, after the champion row was changed
    # but before commit: the transaction must roll back as a whole.
    from reoptd.store.sql import _store

    class Crash(RuntimeError):
        pass

    def crash(*args, **kwargs):
        raise Crash("power cut")

    monkeypatch.setattr(_store, "EventRow", crash)
    with pytest.raises(Crash):
        registry.promote(model, 2, at=T0 + timedelta(hours=1))
    monkeypatch.undo()

    fresh = SqlStore(registry.url, registry.artifacts)  # as after a restart
    assert fresh.model(model).champion_version == 1
    assert fresh.champion(model).version == 1
    assert fresh.load_artifact(fresh.champion(model)) == b"champion"
    assert [v.status for v in fresh.versions(model)] == ["champion", "candidate"]
    assert len(fresh.events(model)) == 1
    fresh.close()


def test_failed_artifact_write_leaves_no_version(
    registry: Store, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        _add(registry, model, b"half written")
    monkeypatch.undo()
    assert registry.versions(model) == []
    leftovers = [p for p in registry.artifacts.root.rglob("*") if p.is_file()]
    assert leftovers == []  # the temporary file was removed, nothing under a real name


def test_corrupt_artifact_is_refused_and_champion_stays(registry: Store, model: str) -> None:
    _add(registry, model, b"good")
    registry.promote(model, 1, at=T0)
    v2 = _add(registry, model, b"will be corrupted")
    registry.artifacts.path(v2.sha256).write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="corrupt"):
        registry.promote(model, 2, at=T0)
    assert registry.model(model).champion_version == 1
    with pytest.raises(ArtifactError):
        registry.load_artifact(v2)


def test_checks_decisions_and_runs_round_trip(registry: Store, model: str) -> None:
    for minutes, share in ((0, 0.1), (30, 0.6)):
        registry.add_check(
            model,
            at=T0 + timedelta(minutes=minutes),
            window_start=T0 - timedelta(hours=2),
            window_end=T0,
            status="ok",
            champion_version=1,
            rows=720,
            labelled_rows=500,
            drift_share=share,
            features={"tenure": {"score": 0.3, "drifted": True}},
            metrics={"f1": 0.71},
        )
    checks = registry.checks(model)
    assert [c.drift_share for c in checks] == [0.1, 0.6]  # oldest first
    assert checks[-1].features["tenure"]["drifted"] is True
    assert checks[-1].at.tzinfo is not None
    history = registry.history(model)
    assert history[-1].metrics == {"f1": 0.71} and history[-1].labelled_rows == 500

    decision = registry.add_decision(
        model,
        check_id=checks[-1].id,
        at=T0,
        fire=True,
        triggers=["drift_share"],
        reasons="drift_share 0.60 > 0.30",
    )
    assert registry.last_decision(model).triggers == ["drift_share"]
    run = registry.start_run(model, started_at=T0, trigger="drift_share", decision_id=decision.id)
    assert run.id is not None
    registry.finish_run(
        run.id, finished_at=T0, outcome="promoted", steps={"retrain": {"seconds": 0.1}}
    )
    state = registry.state(model, T0 + timedelta(hours=1))
    assert state.last_run_at == T0 and state.runs_last_day == 1
    assert registry.state(model, T0 + timedelta(days=2)).runs_last_day == 0
    assert registry.runs(model)[0].steps == {"retrain": {"seconds": 0.1}}


def test_unreachable_database_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ReoptdError, match="cannot reach the database") as error:
        SqlStore("postgresql+psycopg://nobody:secret@127.0.0.1:1/none", tmp_path)
    assert isinstance(error.value, StoreUnavailable)
    assert "127.0.0.1:1/none" in str(error.value) and "secret" not in str(error.value)


def test_a_database_failing_under_the_store_is_a_reoptd_error_naming_it(tmp_path) -> None:
    """The CLI prints any ReoptdError without a traceback; no SQLAlchemy error escapes."""
    store = SqlStore(f"sqlite:///{tmp_path / 'gone.db'}", tmp_path / "artifacts")
    store.ensure_model(load_policy(DEMO_POLICY).model_copy(update={"model": "anything"}), T0)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE ingested_labels")
        conn.exec_driver_sql("DROP TABLE ingested_predictions")
    with pytest.raises(StoreUnavailable, match=r"gone\.db: OperationalError: no such table"):
        store.count_ingested("anything")
    store.ping()  # the database itself still answers
    store.close()


def test_a_scrape_reads_the_same_number_of_statements_whatever_the_models(
    registry: SqlStore, demo_policy: Policy
) -> None:
    """The champion and version collectors read aggregates, not one query per model."""
    import sqlalchemy as sa
    from prometheus_client import generate_latest

    from reoptd.clock import SimulatedClock
    from reoptd.metrics import Metrics

    metrics = Metrics()
    metrics.watch_champions(registry, SimulatedClock(T0))
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's explicit BEGIN is not a read
            statements.append(statement)

    def add_model(name: str) -> None:
        registry.ensure_model(demo_policy.model_copy(update={"model": name}), T0)
        _add(registry, name, f"{name} one".encode(), metrics={"latency_seconds": 0.002})
        _add(registry, name, f"{name} two".encode())
        registry.promote(name, 1, at=T0)
        registry.promote(name, 2, at=T0)
        registry.rollback(name, at=T0)

    def scrape() -> int:
        statements.clear()
        sa.event.listen(registry.engine, "before_cursor_execute", count)
        try:
            text = generate_latest(metrics.registry).decode()
        finally:
            sa.event.remove(registry.engine, "before_cursor_execute", count)
        assert "reoptd_champion_info" in text
        return len(statements)

    add_model("first")
    one = scrape()
    for i in range(5):
        add_model(f"model{i}")
    six = scrape()
    assert one == six and one <= 4, statements
    get = metrics.registry.get_sample_value
    assert get("reoptd_promotions_total", {"model": "model4"}) == 2
    assert get("reoptd_rollbacks_total", {"model": "model4"}) == 1
    info = {"model": "model4", "version": "1", "trigger": "manual"}
    assert get("reoptd_champion_info", {**info, "reason": "no reason recorded"}) == 1
    assert get("reoptd_model_versions", {"model": "model4"}) == 2
    assert get("reoptd_model_latency_seconds", {"model": "model4"}) == 0.002
    assert get("reoptd_version_size_bytes", {"model": "model4", "version": "2"}) == 10


def test_a_first_heartbeat_from_many_threads_at_once_makes_one_process_row(
    registry: SqlStore,
) -> None:
    """A run's lease renewal and the service's beat may write this process's first heartbeat
    together; on PostgreSQL both found no row and the second insert broke the primary key."""
    import threading

    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def beat() -> None:
        barrier.wait()
        try:
            registry.heartbeat()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=beat) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [p.owner for p in registry.processes()].count(registry.owner) == 1
