"""The promotion race of issue 14, with processes (not threads): four processes promoting and
rolling back one model through the store the CLI and the API open. Every champion event's
"from" version must be the champion it replaced, on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reoptd.policy import Policy
from reoptd.store import open_store

T0 = "2026-03-01T12:00:00+00:00"

_WORKER = textwrap.dedent(
    """
    import random, sys
    from datetime import datetime
    from reoptd.errors import ReoptdError
    from reoptd.store import open_store

    url, artifacts, seed, at = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = open_store(url, artifacts)
    rng = random.Random(seed)
    at = datetime.fromisoformat(at)
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(40):
        try:
            if rng.random() < 0.3:
                store.rollback("demo_churn", at=at, reason="race")
            else:
                store.promote("demo_churn", rng.randint(1, 4), at=at, reason="race")
        except ReoptdError as exc:
            if "already the champion" not in str(exc) and "no earlier" not in str(exc):
                raise
    store.close()
    """
)


@pytest.mark.slow
def test_four_processes_changing_one_champion_leave_one_consistent_chain(
    db_url: str, tmp_path: Path, demo_policy: Policy
) -> None:
    from datetime import datetime

    at = datetime.fromisoformat(T0)
    artifacts = tmp_path / "artifacts"
    store = open_store(db_url, artifacts)
    store.ensure_model(demo_policy, at)
    for i in range(4):
        store.add_version(
            "demo_churn",
            model_bytes=b"model %d" % i,
            reference_bytes=b"reference %d" % i,
            at=at,
        )
    store.promote("demo_churn", 1, at=at)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, db_url, str(artifacts), str(seed), T0],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    for worker in workers:  # all opened the store: start them together
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    assert [worker.wait(timeout=300) for worker in workers] == [0, 0, 0, 0]
    events = store.events("demo_churn")
    wrong = [
        (before.to_version, after.from_version)
        for before, after in itertools.pairwise(events)
        if after.from_version != before.to_version
    ]
    assert len(events) > 40
    assert wrong == []
    assert store.model("demo_churn").champion_version == events[-1].to_version
    store.close()
