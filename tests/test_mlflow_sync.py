"""The MLflow sync against a real ``mlflow server`` on loopback: every version logged and
registered, aliases following promotions and rollbacks, a dead server never blocking a
promotion, and a later pass catching up (the store is the source of truth)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _mlflow_server import free_port, mlflow_server
from _served import MODEL, api_policy
from mlflow import MlflowClient

from reoptd import app as assemble
from reoptd.metrics import Metrics
from reoptd.mlflow_sync import MlflowSync
from reoptd.settings import Settings
from reoptd.store import Store

AT = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)

pytestmark = [pytest.mark.external, pytest.mark.slow]


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


def _add(registry: Store, i: int, **fields: object) -> None:
    registry.add_version(
        MODEL,
        model_bytes=b"model %d" % i,
        reference_bytes=b"reference %d" % i,
        at=AT + timedelta(hours=i),
        **fields,  # type: ignore[arg-type]
    )


def _aliases(client: MlflowClient) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()}


def test_versions_and_aliases_follow_the_store(tmp_path: Path, mlflow_url: str) -> None:
    metrics = Metrics()
    settings = Settings(home=tmp_path / "home", mlflow_uri=mlflow_url)
    registry = assemble.open_registry(settings, metrics)
    registry.ensure_model(api_policy(), AT)
    check = registry.add_check(
        MODEL, at=AT, window_start=AT - timedelta(days=1), window_end=AT, status="ok"
    )
    decision = registry.add_decision(
        MODEL,
        check_id=check.id,
        at=AT,
        fire=True,
        triggers=["drift_share"],
        reasons="drift_share 0.40 > 0.30 for 2/2 checks; cooldown ok",
    )
    _add(registry, 1, trigger="bootstrap", params={"max_iter": 50})
    run = registry.start_run(MODEL, started_at=AT, trigger="drift_share", decision_id=decision.id)
    _add(
        registry,
        2,
        trigger="drift_share",
        parent_version=1,
        metrics={
            "metric": "f1",
            "holdout": {"f1": 0.61, "accuracy": 0.8},
            "champion_on_holdout": {"f1": 0.55},
            "compression": {"name": "int8", "methods": ["quantize"]},
        },
    )
    registry.finish_run(
        run.id or 0, finished_at=AT, outcome="promoted", reason="beats v1", challenger_version=2
    )
    registry.promote(MODEL, 1, at=AT, reason="first")  # the listener syncs both versions

    client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
    versions = {
        mv.tags["reoptd.version"]: mv for mv in client.search_model_versions(f"name='{MODEL}'")
    }
    assert sorted(versions) == ["1", "2"]
    assert _aliases(client) == {"champion": versions["1"].version}
    two = versions["2"]
    assert two.tags["reoptd.trigger"] == "drift_share"
    assert two.tags["reoptd.decision_reasons"] == (
        "drift_share 0.40 > 0.30 for 2/2 checks; cooldown ok"
    )
    assert two.tags["reoptd.outcome"] == "promoted: beats v1"
    assert two.tags["reoptd.compression"] == "int8 (quantize)"
    logged = client.get_run(two.run_id)
    assert logged.data.metrics["holdout_f1"] == pytest.approx(0.61)
    assert logged.data.metrics["champion_on_holdout_f1"] == pytest.approx(0.55)
    assert client.get_run(versions["1"].run_id).data.params == {"max_iter": "50"}
    # the artifacts are the store's bytes, retrievable from the registry
    dst = tmp_path / "download"
    path = Path(client.download_artifacts(two.run_id, "model", str(dst)))
    assert (path / "model.pkl").read_bytes() == b"model 2"
    assert (path / "reference.parquet").read_bytes() == b"reference 2"

    registry.promote(MODEL, 2, at=AT, reason="better")
    assert _aliases(client) == {"champion": versions["2"].version}
    registry.rollback(MODEL, at=AT, reason="guard")
    assert _aliases(client) == {"champion": versions["1"].version}

    _add(registry, 3)
    registry.set_status(MODEL, 3, "pending")
    (sync,) = [s for s in registry.listeners if isinstance(s, MlflowSync)]
    assert sync.sync_all() == 0  # the daemon's periodic pass
    three = client.get_model_version_by_alias(MODEL, "challenger")
    assert three.tags["reoptd.version"] == "3" and three.tags["reoptd.status"] == "pending"
    status = client.get_model_version(MODEL, versions["2"].version).tags["reoptd.status"]
    assert status == "retired"
    registry.set_status(MODEL, 3, "rejected")
    sync.sync_all()
    assert _aliases(client) == {"champion": versions["1"].version}
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 3  # a pass adds no duplicate
    errors = metrics.registry.get_sample_value("reoptd_mlflow_sync_errors_total", {"model": MODEL})
    assert errors is None  # no pass failed: the counter was never created
    registry.close()


def test_a_dead_server_never_blocks_a_promotion_and_a_later_pass_catches_up(
    tmp_path: Path, mlflow_url: str
) -> None:
    metrics = Metrics()
    dead = f"http://127.0.0.1:{free_port()}"
    settings = Settings(home=tmp_path / "home", mlflow_uri=dead, mlflow_timeout=2)
    registry = assemble.open_registry(settings, metrics)
    policy = api_policy()
    policy = policy.model_copy(update={"model": "dead_server_model"})
    registry.ensure_model(policy, AT)
    registry.add_version(policy.model, model_bytes=b"m", reference_bytes=b"r", at=AT)
    registry.promote(policy.model, 1, at=AT, reason="first")
    assert registry.model(policy.model).champion_version == 1  # promoted all the same
    errors = metrics.registry.get_sample_value(
        "reoptd_mlflow_sync_errors_total", {"model": policy.model}
    )
    assert errors == 1
    registry.close()

    # a restart with MLflow reachable: the daemon's first pass logs what was missed
    settings = Settings(home=tmp_path / "home", mlflow_uri=mlflow_url, mlflow_sync_every=0.1)
    registry = assemble.open_registry(settings, Metrics(), daemon=True)
    client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
    deadline = datetime.now(UTC) + timedelta(seconds=60)
    champion = None
    while champion is None and datetime.now(UTC) < deadline:
        if _exists(client, policy.model):
            champion = client.get_registered_model(policy.model).aliases.get("champion")
    assert champion is not None
    mv = client.get_model_version(policy.model, str(champion))
    assert mv.tags["reoptd.version"] == "1"
    (sync,) = [s for s in registry.listeners if isinstance(s, MlflowSync)]
    assert sync._thread is not None and sync._thread.is_alive()
    assemble.close_registry(registry)  # what `reoptd run` does when it stops
    assert not sync._thread.is_alive()
    assert "reoptd-mlflow" not in {t.name for t in threading.enumerate()}


def _exists(client: MlflowClient, name: str) -> bool:
    return bool(client.search_registered_models(f"name = '{name}'"))


def test_a_model_adopted_from_the_registry_is_that_registry_version(
    tmp_path: Path, mlflow_url: str
) -> None:
    """The team's model, logged with MLflow's sklearn flavour and aliased ``champion``, is
    adopted by URI; the sync then tags that very MLflow version instead of logging a copy."""
    import mlflow
    import mlflow.sklearn
    from test_adopt import team_pipeline
    from typer.testing import CliRunner

    from reoptd.cli import app
    from reoptd.data import DemoSource, demo
    from reoptd.settings import DEMO_POLICY

    name = "team_churn"
    text = DEMO_POLICY.read_text().replace(f"model: {MODEL}", f"model: {name}")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "team.yaml").write_text(text)
    policy = api_policy().model_copy(update={"model": name})
    rows = DemoSource().read(demo.START, demo.START + timedelta(hours=3))
    rows.to_parquet(tmp_path / "reference.parquet")
    mlflow.set_tracking_uri(mlflow_url)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            team_pipeline(rows, policy),
            name="model",
            registered_model_name=name,
            pip_requirements=["scikit-learn"],
            serialization_format="cloudpickle",
        )
    client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
    client.set_registered_model_alias(name, "champion", "1")

    result = CliRunner().invoke(
        app,
        [
            "models", "adopt", name, "--artifact", f"models:/{name}@champion",
            "--reference", str(tmp_path / "reference.parquet"), "--trust",
            "--policies", str(tmp_path / "policies"),
        ],
        env={"REOPTD_HOME": str(tmp_path / "home"), "REOPTD_MLFLOW_URI": mlflow_url},
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"{name}: adopted models:/{name}@champion as v1 (champion)" in result.output
    (only,) = client.search_model_versions(f"name='{name}'")  # no copy was logged
    assert only.version == "1" and only.tags["reoptd.version"] == "1"
    assert only.tags["reoptd.trigger"] == "adopted"
    assert {k: str(v) for k, v in client.get_registered_model(name).aliases.items()} == {
        "champion": "1"
    }
