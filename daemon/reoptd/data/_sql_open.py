"""Building ``kind: sql`` sources from a policy (``sources`` calls it when one is opened): what
to select, how to map the columns, how far back to keep rows, and where the local window lives
(``$REOPTD_HOME/sources/<model>/production`` and ``.../labels``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from reoptd.data._sql import Incremental, SqlLabels, SqlQuery, SqlSource
from reoptd.data._sql_window import LocalWindow
from reoptd.policy import Policy
from reoptd.settings import Settings


def horizon(policy: Policy) -> timedelta:
    """How far back from the newest read the local window keeps rows: the widest span the daemon
    reads again and again (the training window, the monitored window plus the backfill one)."""
    monitor = policy.monitor
    spans = [policy.train.window, monitor.window + (monitor.backfill.within or timedelta(0))]
    return max(spans)


def state_dir(policy: Policy, role: str, home: Path | None = None) -> Path:
    return (home or Settings().home) / "sources" / policy.model / role


def _name(spec: Any) -> str:
    what = spec.table if spec.table is not None else "query"
    where = f"${spec.url_env}" if spec.url_env is not None else "url"
    return f"sql {what} ({where})"


def open_sql(policy: Policy, home: Path | None = None) -> SqlSource:
    spec = policy.data.production
    query = SqlQuery(
        url_env=spec.url_env,
        url=spec.url,
        table=spec.table,
        query=spec.query,
        time=policy.timestamp,
        numerical=[*policy.features.numerical, policy.target],
        categorical=policy.features.categorical,
        name=_name(spec),
    )
    window = LocalWindow(state_dir(policy, "production", home), policy.timestamp)
    return SqlSource(Incremental(query, window, horizon(policy), spec.settle))


def open_sql_labels(policy: Policy, home: Path | None = None) -> SqlLabels:
    spec = policy.data.labels
    assert spec is not None and spec.arrived is not None and policy.id is not None
    query = SqlQuery(
        url_env=spec.url_env,
        url=spec.url,
        table=spec.table,
        query=spec.query,
        time=spec.arrived,
        columns=[policy.id, policy.target, spec.arrived],
        numerical=[policy.target] if policy.task == "regression" else [],
        name="labels " + _name(spec),
    )
    window = LocalWindow(state_dir(policy, "labels", home), spec.arrived)
    return SqlLabels(Incremental(query, window, horizon(policy), spec.settle), spec.arrived)
