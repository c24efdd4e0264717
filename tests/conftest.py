"""Shared fixtures: policies, a store on SQLite or a real PostgreSQL, a simulated clock.

The PostgreSQL server is the one already listening on 127.0.0.1:5432 (trust auth) when there is
one; otherwise the Debian package (installed by tests/install-servers.sh, which `make test`
runs) is started once per session on a free loopback port in a temporary directory and stopped
at the end. Each test gets a database of its own, dropped afterwards. Tests that use it are
marked `external`.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _nats import jetstream  # noqa: F401  (a JetStream stream per test)
from _s3 import s3_env, s3_server  # noqa: F401  (the moto S3 fixtures, for every test)

from reoptd.clock import SimulatedClock
from reoptd.data import demo
from reoptd.metrics import Metrics
from reoptd.policy import Policy, load_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import MemoryStore
from reoptd.store.sql import SqlStore


@pytest.fixture(autouse=True)
def _logger_levels() -> Iterator[None]:
    """CLI commands run in-process (typer's CliRunner) quiet reoptd's loggers for their progress
    bars, as a command may in its own process; restore them (and reset loggers the test made) so
    a later test's caplog sees their records."""
    root = logging.getLogger()
    before = {name: logging.getLogger(name).level for name in list(logging.root.manager.loggerDict)}
    root_level = root.level
    yield
    root.setLevel(root_level)
    for name in list(logging.root.manager.loggerDict):
        logging.getLogger(name).setLevel(before.get(name, logging.NOTSET))


ROOT = Path(__file__).resolve().parent.parent

# Re-optimizations run in the calling thread unless a test asks for the process executor (the
# daemon's default): a child process per run would make the many runs of the suite slower. The
# daemons the tests start inherit this; tests of budgets and shutdown set `process`.
os.environ.setdefault("REOPTD_EXECUTOR", "inline")


@pytest.fixture
def demo_policy() -> Policy:
    return load_policy(DEMO_POLICY)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(demo.START)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: a PostgreSQL server the tests may use as it is (CI and the development machine run one)
RUNNING_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _answers(base: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(_admin(base), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _admin(base: str) -> str:
    """The libpq URL of the server's ``postgres`` database (for CREATE/DROP DATABASE)."""
    return base.replace("+psycopg", "") + "/postgres"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray cluster of 2 CPUs owned by this process, one per test module that asks
    (``ray.shutdown`` stops it); yields the address of its GCS."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        _node_ip_address="127.0.0.1",  # loopback only
    )
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server on loopback; yields a base URL without database name."""
    if _answers(RUNNING_POSTGRES):
        yield RUNNING_POSTGRES
        return
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


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database of its own on the PostgreSQL server, dropped after the test."""
    import psycopg

    name = f"reoptd_test_{uuid.uuid4().hex}"
    with psycopg.connect(_admin(postgres_server), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_server}/{name}"
    with psycopg.connect(_admin(postgres_server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.external)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reoptd.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[SqlStore]:
    """An SQL store on SQLite, and on PostgreSQL (``external``)."""
    reg = SqlStore(db_url, tmp_path / "artifacts")
    yield reg
    reg.close()


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[SqlStore]:
    reg = SqlStore(f"sqlite:///{tmp_path / 'reoptd.db'}", tmp_path / "artifacts")
    yield reg
    reg.close()


@pytest.fixture
def memory_store(tmp_path: Path) -> MemoryStore:
    """A store in memory (artifacts in a temporary directory): the loop's unit tests' default."""
    return MemoryStore(tmp_path / "artifacts")


@pytest.fixture(scope="session")
def api_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded registry (demo model: v1 champion, v2 pending) that API tests copy (_served.py)."""
    from _served import seed

    directory = tmp_path_factory.mktemp("api-template") / "home"
    seed(directory)
    return directory
