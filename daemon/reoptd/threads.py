"""Thread budgets: how many BLAS/OpenMP threads each worker may use.

Every fit and predict in reoptd goes through numpy, scikit-learn (OpenMP) or torch, which by
default each start one thread per core. Several cycles at once, or a busy machine, then run
more threads than cores, and OpenMP threads that spin waiting for each other burn the CPU: on a
busy 2-core machine the demo backtest took 194-334 s with the default threads and 6-9 s with one.
So reoptd caps them: by default the cores divided by the work that runs at once (the daemon's
models; the backtest runs one step at a time but its small fits gain nothing from threads, so
it takes one), or ``REOPTD_THREADS``.
"""

from __future__ import annotations

import logging
import os

#: environment variables the usual thread pools read when they start
POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def thread_budget(concurrent: int = 1, cores: int | None = None) -> int:
    """Threads per worker: ``REOPTD_THREADS`` if set, else ``cores // concurrent`` (at least 1;
    ``cores``: the usable cores by default). The local executor's slots each get this with
    ``concurrent`` = slots, so concurrent trainings never oversubscribe the machine."""
    given = os.environ.get("REOPTD_THREADS", "").strip()
    if given:
        try:
            return max(1, int(given))
        except ValueError:
            raise ValueError(f"REOPTD_THREADS must be a whole number, got {given!r}") from None
    available = cores if cores is not None else usable_cores()
    return max(1, available // max(1, concurrent))


def apply_thread_budget(threads: int, who: str, log: logging.Logger | None = None) -> int:
    """Cap every BLAS/OpenMP pool at ``threads``: the pools already loaded (threadpoolctl), the
    ones loaded later and child processes (the environment), and torch's if it is loaded."""
    import sys

    from threadpoolctl import threadpool_limits

    for name in POOL_VARIABLES:
        os.environ[name] = str(threads)
    threadpool_limits(limits=threads)  # kept for the rest of the process
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    (log or logging.getLogger("reoptd")).info(
        "%s: thread budget %d BLAS/OpenMP thread(s) per worker (%d core(s); REOPTD_THREADS"
        " overrides)",
        who,
        threads,
        os.cpu_count() or 1,
    )
    return threads
