"""Shared fixtures: policies, a registry on SQLite or a real PostgreSQL, a simulated clock.

The PostgreSQL server is the Debian package (installed by tests/install-servers.sh, which
`make test` runs); it is started once per session on a free loopback port in a temporary
directory and stopped at the end. Tests that use it are marked `external`.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reoptd.clock import SimulatedClock
from reoptd.data import _demo
from reoptd.metrics import Metrics
from reoptd.policy import Policy, load_policy
from reoptd.registry import Registry
from reoptd.settings import DEMO_POLICY

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def demo_policy() -> Policy:
    return load_policy(DEMO_POLICY)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(_demo.START)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server on loopback; yields a base URL without database name."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        pytest.fail(
            "PostgreSQL is not installed: run `bash tests/install-servers.sh` as root "
            "(make test does), or deselect these tests with -m 'not external'"
        )
    bindir = Path(bins[-1])
    workdir = Path(tempfile.mkdtemp(prefix="reoptd-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(workdir, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = workdir / "data"
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_user,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(workdir / "log"),
            "-o",
            f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)


_databases = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.external)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reoptd.db'}"
    import psycopg

    base = request.getfixturevalue("postgres_server")
    name = f"reoptd_test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(base.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(db_url, tmp_path / "artifacts")
    yield reg
    reg.close()


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path / 'reoptd.db'}", tmp_path / "artifacts")
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def api_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded registry (demo model: v1 champion, v2 pending) that API tests copy (_served.py)."""
    from _served import seed

    directory = tmp_path_factory.mktemp("api-template") / "home"
    seed(directory)
    return directory
