"""The Optuna storage a tune step's studies live in, opened once per step (and once per Ray
worker for trial tasks), its connections closed when the step ends. It is Optuna's RDB storage
with this process's running trials read once (``OwnTrials``): about 29 SQL statements per trial
of four parameters instead of 43.

On PostgreSQL its sessions commit without waiting for the write-ahead log to reach the disk
(``synchronous_commit=off``, for these connections only). Optuna's RDB storage commits about eight
small transactions per trial (the trial, each parameter, its values and state);
waiting for an fsync at each one made the wait for the disk a large part of a short trial, and
parallel trials queued on the one log. What it risks: a crash of the PostgreSQL *server* may lose
the trial writes of its last few hundred milliseconds (never a torn or corrupt row; PostgreSQL's
``wal_writer_delay`` times three at most), i.e. a few trials a resumed study runs again. The
daemon's own tables (runs, versions, promotions) keep their synchronous commits: the store's
engine is not this one. A user's own ``options`` in the database URL are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from sqlalchemy.engine import make_url

from reoptd.optimize._own_trials import OwnTrials

#: what Optuna's sessions on PostgreSQL set (libpq's ``options``: server settings per connection)
PG_OPTIONS = "-c synchronous_commit=off"


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine arguments for a study storage at ``url``."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return {}
    own = parsed.query.get("options")
    own = " ".join(own) if isinstance(own, tuple) else own
    return {"connect_args": {"options": f"{own} {PG_OPTIONS}" if own else PG_OPTIONS}}


def open_storage(url: str | None) -> optuna.storages.BaseStorage:
    """The studies' storage at ``url`` (the daemon's database: Optuna's RDB storage, its
    process's running trials read once, ``OwnTrials``), or in memory when None."""
    if url is None:
        return optuna.storages.InMemoryStorage()
    return OwnTrials(optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url)))


def close_storage(storage: optuna.storages.BaseStorage) -> None:
    """Close the connections ``open_storage`` opened (nothing for one in memory)."""
    if isinstance(storage, OwnTrials):
        storage.close()


def then(
    objective: Callable[[optuna.Trial], Any], after: Callable[[optuna.Study], None]
) -> Callable[[optuna.Trial], Any]:
    """``objective``, then ``after(study)`` however the trial ended (before Optuna records its
    end). In place of ``study.optimize``'s callbacks, which read each finished trial back in full
    (six SQL statements) to hand it over; ``after`` may ``study.stop()`` the loop."""

    def run(trial: optuna.Trial) -> Any:
        try:
            return objective(trial)
        finally:
            after(trial.study)

    return run
