"""Artifacts on object storage: a real S3-compatible server (moto's server mode on loopback),
content-addressed keys, atomic writes, sha256 verified on every load, and the daemon's store,
the settings and the serving client all reading from there."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from _s3 import s3_bucket, s3_env, s3_server  # noqa: F401 - fixtures

from reoptd.app import open_registry
from reoptd.client import Champion
from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import DemoSource, demo
from reoptd.errors import ArtifactError
from reoptd.metrics import Metrics
from reoptd.policy import Policy
from reoptd.settings import Settings
from reoptd.store import Store, open_artifacts
from reoptd.store.fsspec_artifacts import FsspecArtifactStore

pytestmark = pytest.mark.external


@pytest.fixture
def s3(s3_server: str) -> Any:  # noqa: F811
    return boto3.client("s3", endpoint_url=s3_server)


@pytest.fixture
def artifacts(s3_bucket: str) -> Iterator[FsspecArtifactStore]:  # noqa: F811
    store = open_artifacts(f"s3://{s3_bucket}/reoptd/artifacts")
    assert isinstance(store, FsspecArtifactStore)
    yield store


def _keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_bytes_are_stored_under_their_sha256_and_read_back_verified(
    artifacts: FsspecArtifactStore,
    s3: Any,
    s3_bucket: str,  # noqa: F811
) -> None:
    data = b"model bytes " * 1000
    digest = artifacts.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert artifacts.put(data) == digest  # the same bytes again: same key
    # one object under its real key, no temporary object left behind
    assert _keys(s3, s3_bucket) == [f"reoptd/artifacts/{digest[:2]}/{digest}"]
    assert artifacts.uri(digest) == f"s3://{s3_bucket}/reoptd/artifacts/{digest[:2]}/{digest}"
    assert artifacts.exists(digest)
    assert artifacts.get(digest) == data
    assert not artifacts.exists("0" * 64)


def test_an_altered_or_missing_object_is_refused_on_load(
    artifacts: FsspecArtifactStore,
    s3: Any,
    s3_bucket: str,  # noqa: F811
) -> None:
    digest = artifacts.put(b"the champion")
    s3.put_object(Bucket=s3_bucket, Key=f"reoptd/artifacts/{digest[:2]}/{digest}", Body=b"evil")
    with pytest.raises(ArtifactError, match=rf"s3://{s3_bucket}/.*{digest}.* is corrupt"):
        artifacts.get(digest)
    with pytest.raises(ArtifactError, match=r"unreadable at s3://"):
        artifacts.get("f" * 64)


def test_a_write_cut_off_before_its_move_leaves_nothing_under_a_real_name(
    artifacts: FsspecArtifactStore,
    s3: Any,
    s3_bucket: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def cut(*_: object, **__: object) -> None:
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(artifacts.fs, "mv", cut)
    with pytest.raises(ArtifactError, match="not written: connection reset"):
        artifacts.put(b"half a model")
    assert _keys(s3, s3_bucket) == []  # the temporary object is removed, no real one exists
    assert not artifacts.exists(hashlib.sha256(b"half a model").hexdigest())


def test_the_store_keeps_versions_there_and_collects_orphans(
    artifacts: FsspecArtifactStore,
    s3: Any,
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
    clock: SimulatedClock,
    demo_policy: Policy,
) -> None:
    settings = Settings(home=tmp_path, artifacts_url=artifacts.url)
    registry: Store = open_registry(settings)
    try:
        assert isinstance(registry.artifacts, FsspecArtifactStore)
        name = registry.ensure_model(demo_policy, clock.now()).name
        version = registry.add_version(
            name, model_bytes=b"model", reference_bytes=b"reference", at=clock.now()
        )
        assert version.artifact_path.startswith(f"s3://{s3_bucket}/reoptd/artifacts/")
        assert registry.load_artifact(version) == b"model"
        assert registry.load_reference(version) == b"reference"
        orphan = artifacts.put(b"a run cut off before its version")
        s3.put_object(Bucket=s3_bucket, Key="reoptd/artifacts/ab/.tmp-killed", Body=b"par")
        removed = registry.collect_artifacts(grace=timedelta(0))
        assert sorted(removed) == sorted([f"{orphan[:2]}/{orphan}", "ab/.tmp-killed"])
        assert registry.load_artifact(version) == b"model"  # a referenced one stays
    finally:
        registry.close()
    assert not (tmp_path / "artifacts").exists()  # nothing written to the local directory


@pytest.mark.slow
def test_the_serving_client_loads_the_champion_from_object_storage(
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    demo_policy: Policy,
) -> None:
    url = f"s3://{s3_bucket}/prod"
    monkeypatch.setenv("REOPTD_ARTIFACTS", url)
    registry = open_registry(Settings(home=tmp_path))
    try:
        loop = ModelLoop(demo_policy, registry, Metrics())
        run = loop.optimize(demo.START, trigger="bootstrap")
        assert run.outcome == "promoted", run.reason
        champion_row = registry.champion(demo_policy.model)
        assert champion_row is not None
        assert champion_row.artifact_path.startswith(url)
    finally:
        registry.close()
    with Champion(demo_policy.model, home=tmp_path, poll_every=60) as champion:
        assert champion.version == champion_row.version
        frame = DemoSource().read(demo.START - timedelta(days=1), demo.START)
        assert len(champion.predict(frame.head(5))) == 5
    monkeypatch.delenv("REOPTD_ARTIFACTS")
    with Champion(demo_policy.model, home=tmp_path, artifacts=url, poll_every=60) as champion:
        assert champion.version == champion_row.version
    assert not (tmp_path / "artifacts").exists()
