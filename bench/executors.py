"""The same re-optimizations on the `local` process executor and on a local 2-CPU Ray cluster.

Twenty models (the demo's churn stream), each re-optimized once by a tune step of 20 trials (random
sampler, no pruner: every trial is the same work) after a retrain, then validated, through the
daemon's own path (``ModelLoop.optimize``: rows gathered, steps on the executor, version registered
and promoted). Both executors get two runs at a time (two cores) and one BLAS thread per run;
studies live in a PostgreSQL database of the bench's own. Then the parallel trial efficiency on
Ray: one tune of 40 trials with ``tune.jobs: 1`` and with ``tune.jobs: 2`` (the run's task and
trial tasks drawing trials from one quota against the shared study), after a warm-up, as trials per
second of the search. Target: at least 1.7x.

It is measured twice. With the demo's tiny trials (``max_iter: 150`` on ~400 rows: about 40 ms of
fitting) each trial's fixed cost, Optuna's eight-odd transactions on PostgreSQL (the client's ORM
work and the server's, on the same two cores as the trials), weighs as much as the fit, and a
second worker's share of the cores is partly the database's. With realistic trials
(``--realistic-iterations``, default ``max_iter: 1500``: about half a second of fitting, what a
real tuning trial costs) that fixed cost is small beside the work. Both figures are printed; the
tiny one stays ``trial_efficiency``. For each efficiency run the CPU seconds of PostgreSQL, Ray's
daemons (raylet, GCS) and Ray's workers are printed beside it (from ``/proc``, Linux only). The
load average is printed at the start and the end: on a busy machine the second worker's CPU is not
free and the figure says little. Last line:

    local_runs_per_min=... ray_runs_per_min=... trial_efficiency=... realistic_trial_efficiency=...

Usage: PYTHONPATH=daemon .venv/bin/python bench/executors.py [--runs 20] [--trials 20]
       [--efficiency-trials 40] [--realistic-iterations 1500]
       [--db postgresql+psycopg://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # one BLAS thread per run on both executors

import psycopg

from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.metrics import Metrics
from reoptd.optimize import Executor, LocalProcessExecutor, RayExecutor
from reoptd.policy import Policy, parse_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store.sql import SqlStore

AT = demo.START + timedelta(hours=6)


def policy(model: str, trials: int, jobs: int = 1, iterations: int | None = None) -> Policy:
    """The demo's policy with a tune step; ``iterations``: the boosting iterations (``max_iter``)
    of every fit, default the demo's 150."""
    text = DEMO_POLICY.read_text().replace("model: demo_churn", f"model: {model}")
    if iterations is not None:
        text = text.replace("max_iter: 150", f"max_iter: {iterations}")
    text = text.replace(
        "pipeline: [retrain, validate]",
        "pipeline: [retrain, tune, validate]\n"
        f"tune: {{trials: {trials}, sampler: random, pruner: none, jobs: {jobs},"
        " warm_start: false, seed: 1}",
    )
    return parse_policy(text, f"{model}.yaml")


class Database:
    """A PostgreSQL database of the bench's own, dropped at the end."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.name = f"reoptd_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self._admin(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.url = f"{server}/{self.name}"

    def _admin(self) -> str:
        return self.server.replace("+psycopg", "") + "/postgres"

    def drop(self) -> None:
        with psycopg.connect(self._admin(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def runs_per_minute(
    executor: Executor, registry: SqlStore, prefix: str, runs: int, trials: int
) -> float:
    loops = [
        ModelLoop(policy(f"{prefix}{i:02d}", trials), registry, Metrics(), executor=executor)
        for i in range(runs)
    ]
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:  # two runs at a time: two cores
        results = list(pool.map(lambda loop: loop.optimize(AT, trigger="bootstrap"), loops))
    seconds = time.perf_counter() - started
    failed = [r.reason for r in results if r.outcome != "promoted"]
    if failed:
        raise SystemExit(f"{prefix}: {len(failed)} run(s) failed: {failed[0]}")
    print(f"{prefix}: {runs} runs of {trials} trials in {seconds:.1f}s")
    return runs / seconds * 60


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) so far of PostgreSQL's processes, Ray's daemons and Ray's
    workers, from ``/proc`` (empty where there is none). PostgreSQL's include the children its
    postmaster reaped: a connection closed during a run (a step's storage) ends its backend."""
    groups: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        if name.startswith("postgres"):
            group = "postgres"
        elif name in ("raylet", "gcs_server"):
            group = name
        elif name.startswith("ray::"):
            group = "ray_workers"
        else:
            continue
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        if group == "postgres":
            ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped backends
        groups[group] = groups.get(group, 0.0) + ticks / tick
    return groups


def trials_per_second(
    executor: RayExecutor,
    registry: SqlStore,
    model: str,
    trials: int,
    jobs: int,
    iterations: int | None = None,
) -> float:
    loop = ModelLoop(
        policy(model, trials, jobs, iterations), registry, Metrics(), executor=executor
    )
    before = cpu_seconds()
    run = loop.optimize(AT, trigger="bootstrap")
    after = cpu_seconds()
    if run.outcome != "promoted":
        raise SystemExit(f"{model}: {run.reason}")
    tune = run.steps["tune"]
    rate = tune["trials"] / tune["search_seconds"]
    cpu = ", ".join(f"{k} {after[k] - before.get(k, 0.0):.2f}s" for k in sorted(after))
    print(
        f"{model}: {tune['trials']} trials, jobs={jobs}: {rate:.2f} trials/s"
        f" (load {os.getloadavg()[0]:.2f}; CPU over the run: {cpu or 'no /proc'})"
    )
    return float(rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--efficiency-trials", type=int, default=40)
    parser.add_argument("--realistic-iterations", type=int, default=1500)
    parser.add_argument("--db", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    database = Database(args.db)
    artifacts = Path(tempfile.mkdtemp(prefix="reoptd-bench-"))
    registry = SqlStore(database.url, artifacts)  # it makes Optuna's tables before a run
    try:
        local = LocalProcessExecutor()
        local.start()
        try:
            local_rate = runs_per_minute(local, registry, "local", args.runs, args.trials)
        finally:
            local.shutdown()

        import ray

        started = time.perf_counter()
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            logging_level=logging.WARNING,
            _node_ip_address="127.0.0.1",
        )
        print(f"ray: local cluster of 2 CPUs started in {time.perf_counter() - started:.1f}s")
        executor = RayExecutor("auto")
        try:
            ray_rate = runs_per_minute(executor, registry, "ray", args.runs, args.trials)
            trials_per_second(executor, registry, "warmup", 8, 2)  # trial tasks' workers warm
            n = args.efficiency_trials
            one = trials_per_second(executor, registry, "jobs1", n, 1)
            two = trials_per_second(executor, registry, "jobs2", n, 2)
            heavy = args.realistic_iterations
            real_one = trials_per_second(executor, registry, "real1", n, 1, heavy)
            real_two = trials_per_second(executor, registry, "real2", n, 2, heavy)
        finally:
            executor.close()
            ray.shutdown()
    finally:
        registry.close()
        database.drop()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(
        f"tiny trials: jobs1 {one:.2f} trials/s, jobs2 {two:.2f} trials/s;"
        f" realistic trials (max_iter {args.realistic_iterations}): jobs1 {real_one:.2f} trials/s,"
        f" jobs2 {real_two:.2f} trials/s"
    )
    print(
        f"local_runs_per_min={local_rate:.2f} ray_runs_per_min={ray_rate:.2f}"
        f" trial_efficiency={two / one:.2f} realistic_trial_efficiency={real_two / real_one:.2f}"
    )


if __name__ == "__main__":
    main()
