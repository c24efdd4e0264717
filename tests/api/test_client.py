"""reoptd.client.Champion against a real API server: hot swap under concurrent predictions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from _served import MODEL, Served, serve

from reoptd.client import Champion
from reoptd.data import DemoSource, demo
from reoptd.errors import ArtifactError, ModelNotFound
from reoptd.models import load_model


@pytest.fixture
def served(api_template: Path, tmp_path: Path) -> Iterator[Served]:
    with serve(api_template, tmp_path / "home") as s:
        yield s


def _frame():
    start = demo.DRIFT_AT + timedelta(hours=1)
    return DemoSource().read(start, start + timedelta(minutes=20))


def _outputs(served: Served, frame) -> dict[int, np.ndarray]:
    out = {}
    for v in served.registry.versions(MODEL):
        model = load_model(served.registry.load_artifact(v))
        out[v.version] = model.predict_score(frame)
    return out


def _wait(condition, what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_the_client_hot_swaps_under_concurrent_predictions(served: Served) -> None:
    frame = _frame()
    expected = _outputs(served, frame)
    assert not np.allclose(expected[1], expected[2])  # the two versions are told apart
    results: list[tuple[int, np.ndarray]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    with Champion(MODEL, url=served.url, poll_every=0.05) as champion:
        assert champion.version == 1

        def predict() -> None:
            while not stop.is_set():
                try:
                    results.append(champion.predict_proba_versioned(frame))
                except BaseException as exc:  # any exception fails the test below
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=predict) for _ in range(3)]
        for t in threads:
            t.start()
        _wait(lambda: len(results) >= 20, "predictions from v1")
        with served.client() as http:
            assert http.post(f"/models/{MODEL}/approve").json()["to_version"] == 2
        _wait(lambda: champion.version == 2, "the swap to v2")
        served_before = len(results)
        _wait(lambda: len(results) >= served_before + 20, "predictions from v2")
        stop.set()
        for t in threads:
            t.join()
        assert champion.swaps == 1
        assert champion.predict_versioned(frame)[0] == 2

    assert errors == []
    versions = [v for v, _ in results]
    assert set(versions) == {1, 2}
    for version, scores in results:  # every batch is wholly one version's output
        np.testing.assert_allclose(scores, expected[version])
    first_v2 = versions.index(2)
    # each thread switches once; after the last thread's switch only v2 serves
    assert versions[-10:] == [2] * 10 and versions[:first_v2] == [1] * first_v2


def test_a_broken_artifact_is_never_loaded_and_the_old_version_keeps_serving(
    served: Served,
) -> None:
    frame = _frame()
    with Champion(MODEL, url=served.url, poll_every=3600) as champion:
        v2 = served.registry.version(MODEL, 2)
        served.registry.approve(MODEL, 2, at=served.clock.now(), reason="test")
        # the store's file, altered after the promotion
        served.registry.artifacts.path(v2.sha256).write_bytes(b"tampered")
        with pytest.raises(Exception, match=r"HTTP 503.*corrupt"):
            champion.refresh()
        assert champion.version == 1 and champion.predict_versioned(frame)[0] == 1


def test_the_client_reads_the_registry_directly_with_home(served: Served) -> None:
    with Champion(MODEL, home=served.home, poll_every=3600) as champion:
        assert champion.version == 1
        assert champion.refresh() is False  # nothing changed
        served.registry.approve(MODEL, 2, at=served.clock.now(), reason="test")
        assert champion.refresh() is True and champion.version == 2
        assert len(champion.predict(_frame())) == len(_frame())


def test_client_errors_name_the_model(served: Served) -> None:
    with pytest.raises(ModelNotFound, match="'nope'"):
        Champion("nope", url=served.url)
    with pytest.raises(ValueError, match="exactly one of url"):
        Champion(MODEL)
    v1 = served.registry.version(MODEL, 1)
    served.registry.artifacts.path(v1.sha256).write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="corrupt"):
        Champion(MODEL, home=served.home)


def test_pickles_are_refused_and_an_onnx_champion_serves_numpy_arrays(served: Served) -> None:
    from reoptd.optimize.compress import export_onnx

    frame = _frame()
    with served.client() as http:
        response = http.get(f"/models/{MODEL}/champion/artifact")
        assert response.headers["X-Reoptd-Serving-Form"] == "pickle"  # the demo's sklearn model
    with pytest.raises(ArtifactError, match="refuses pickles"):
        Champion(MODEL, url=served.url, allow_pickle=False)
    champion_row = served.registry.champion(MODEL)
    assert champion_row is not None
    python = load_model(served.registry.load_artifact(champion_row))
    with Champion(MODEL, url=served.url) as champion:  # arrays work with any form
        assert champion.form == "pickle"
        numerical, categorical = champion.arrays(frame)
        assert np.array_equal(
            champion.predict_arrays(numerical, categorical), python.predict(frame)
        )
        assert np.array_equal(
            champion.predict_proba_arrays(numerical, categorical), python.predict_score(frame)
        )
    onnx = export_onnx(python)  # the champion's ONNX form, registered and promoted as a version
    row = served.registry.add_version(
        MODEL,
        model_bytes=onnx.to_bytes(),
        reference_bytes=served.registry.load_reference(champion_row),
        at=served.clock.now(),
        parent_version=champion_row.version,
    )
    served.registry.promote(MODEL, row.version, at=served.clock.now(), reason="its ONNX form")
    with served.client() as http:
        response = http.get(f"/models/{MODEL}/champion/artifact")
        assert response.headers["X-Reoptd-Serving-Form"] == "onnx"
    for where in ({"url": served.url}, {"home": served.home}):
        with Champion(MODEL, allow_pickle=False, **where) as champion:  # type: ignore[arg-type]
            assert champion.version == row.version and champion.form == "onnx"
            numerical, categorical = champion.arrays(frame)
            assert np.array_equal(
                champion.predict_arrays(numerical, categorical), python.predict(frame)
            )
            assert np.allclose(
                champion.predict_proba_arrays(numerical, categorical),
                python.predict_score(frame),
                atol=1e-5,
            )
            assert np.array_equal(champion.predict(frame), python.predict(frame))
