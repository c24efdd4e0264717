"""Thread budgets: BLAS/OpenMP threads capped per worker."""

from __future__ import annotations

import logging

import pytest

from reoptd.threads import apply_thread_budget, thread_budget


def test_the_budget_divides_the_cores_by_the_work_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REOPTD_THREADS", raising=False)
    assert thread_budget(concurrent=1, cores=8) == 8
    assert thread_budget(concurrent=3, cores=8) == 2
    assert thread_budget(concurrent=16, cores=8) == 1  # never none
    monkeypatch.setenv("REOPTD_THREADS", "3")
    assert thread_budget(concurrent=1, cores=8) == 3
    monkeypatch.setenv("REOPTD_THREADS", "many")
    with pytest.raises(ValueError, match="REOPTD_THREADS"):
        thread_budget()


def test_applying_it_caps_the_loaded_pools_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import numpy  # noqa: F401  (its BLAS pool is loaded)
    from threadpoolctl import threadpool_info, threadpool_limits

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")  # restored after the test
    with threadpool_limits(limits=None), caplog.at_level(logging.INFO, logger="reoptd"):
        apply_thread_budget(1, "test")
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert "test: thread budget 1 BLAS/OpenMP thread(s) per worker" in caplog.text
