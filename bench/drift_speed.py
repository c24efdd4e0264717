"""Evidently's DataDriftPreset vs reoptd's lean drift path on the same frames, in one run.

Generates a reference and a current frame of ``--rows`` rows each and ``--cols`` columns (about
a third categorical, the rest numerical; every fourth column shifted in the current frame), runs

* Evidently's ``Report([DataDriftPreset(...)])`` configured with the policy's methods and
  thresholds (or none: Evidently's automatic choice), reading each column's ValueDrift score and
  test verdict, and
* the lean path, ``DriftDetector(policy, reference).check(current)``, timed cold (the
  reference preparation and the check, as the first check of a new champion pays them) and
  warm (the check alone, as every later check of that champion pays: the reference statistics
  stay with the loaded version),

then prints a per-column table, the lean path's peak memory (tracemalloc, a separate untimed run)
against the two frames' size, and one closing line:

    rows=… cols=… preset_s=… lean_s=… check_s=… speedup=… warm_speedup=… identical=true|false
    peak_mb=…  [wide_rows=… wide_cols=… … wide_peak_mb=…]

``speedup`` is preset over cold lean, ``warm_speedup`` preset over the check alone.
``identical`` is true when every column's drifted verdict, method and threshold agree and the
scores agree to 1e-9 (relative). ``--wide`` adds a wide case (100,000 x 1,000 by default) whose
figures carry a ``wide_`` prefix: the lean path on every column (cold, warm, and with the window
streamed from Parquet in column chunks, with each one's peak memory), Evidently's preset only on
two evenly spread column samples (``--wide-preset 25,100``; the full width takes about 15
minutes of a core here), its full-width time EXTRAPOLATED linearly from them and every ratio
built on it named ``*_extrapolated``:

    wide_rows=… wide_cols=… wide_preset_measured_cols=W1/W2 wide_preset_measured_s=…/…
    wide_preset_extrapolated_s=… wide_lean_s=… wide_check_s=… wide_speedup_extrapolated=…
    wide_warm_speedup_extrapolated=… wide_identical=… wide_peak_mb=… wide_stream_peak_mb=…

``--wide-preset all`` measures the preset on every column instead (no extrapolation).

Usage: .venv/bin/python bench/drift_speed.py [--rows 1000000] [--cols 20]
       [--methods auto | NUM[,CAT]]   e.g. --methods ks,chisquare  (default: auto)
       [--wide [ROWSxCOLS]] [--wide-preset W1,W2 | all] [--wide-chunk 100] [--only-wide]
"""

from __future__ import annotations

import argparse
import gc
import math
import tempfile
import time
import tracemalloc

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from evidently import Dataset, Report

from reoptd.monitor import DriftDetector, FeatureDrift
from reoptd.monitor._drift import data_definition
from reoptd.monitor._html import drift_preset
from reoptd.policy import Policy

CATEGORIES = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])


def frames(rows: int, cols: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list, list]:
    """Reference and current frames; columns 0, 4, 8, ... drift in the current one."""
    rng = np.random.default_rng(seed)
    numerical, categorical = [], []
    ref: dict[str, np.ndarray] = {}
    cur: dict[str, np.ndarray] = {}
    for i in range(cols):
        shift = 1.0 if i % 4 == 0 else 0.0
        if i % 3 == 2:
            name = f"c{i:02d}"
            categorical.append(name)
            p = np.array([0.3, 0.25, 0.2, 0.12, 0.08, 0.05])
            q = np.roll(p, 1) if shift else p
            ref[name] = CATEGORIES[rng.choice(6, rows, p=p)]
            cur[name] = CATEGORIES[rng.choice(6, rows, p=q)]
        else:
            name = f"x{i:02d}"
            numerical.append(name)
            if i % 3 == 1:  # a rounded, heavy-tailed column
                ref[name] = rng.gamma(2.0, 10.0, rows).round()
                cur[name] = (rng.gamma(2.0, 10.0 + 5 * shift, rows)).round()
            else:
                ref[name] = rng.normal(0.0, 1.0, rows)
                cur[name] = rng.normal(0.3 * shift, 1.0, rows)
    return pd.DataFrame(ref), pd.DataFrame(cur), numerical, categorical


def policy_for(numerical: list[str], categorical: list[str], methods: str) -> Policy:
    drift: dict[str, object] = {}
    if methods != "auto":
        num, _, cat = methods.partition(",")
        drift = {"method": num, "cat_method": cat or None}
    return Policy.model_validate(
        {
            "version": 1,
            "model": "bench_drift",
            "task": "classification",
            "target": "y",
            "features": {"numerical": numerical, "categorical": categorical},
            "data": {"production": {"kind": "files", "path": "unused"}},
            "monitor": {"drift": drift},
            "train": {"estimator": "sklearn.linear_model.LogisticRegression"},
        }
    )


def preset(policy: Policy, reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    """Each column's drift as Evidently's DataDriftPreset decides it."""
    definition = data_definition(policy)
    report = Report([drift_preset(policy)], include_tests=True)
    result = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    ).dict()
    verdicts = {t["metric_config"]["metric_id"]: t["status"] for t in result["tests"]}
    out = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            out[config["column"]] = FeatureDrift(
                score=float(metric["value"]),
                drifted=verdicts.get(metric["id"]) == "FAIL",
                method=str(config.get("method")),
                threshold=config.get("threshold"),
            )
    return out


def lean(policy: Policy, reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    return DriftDetector(policy, reference).check(current)


def compare(rows: int, cols: int, methods: str, table: bool) -> dict[str, str]:
    """One case: Evidently's preset, the lean path cold (reference prepared, then the check, as
    the first check of a new champion pays) and warm (the check alone, as every later check of
    the champion pays: its reference statistics are kept with the loaded version), and the lean
    path's peak memory. Returns the case's key=value figures."""
    reference, current, numerical, categorical = frames(rows, cols)
    policy = policy_for(numerical, categorical, methods)
    frame_bytes = int(
        reference.memory_usage(deep=True).sum() + current.memory_usage(deep=True).sum()
    )
    print(
        f"{rows:,} rows x {cols} columns ({len(numerical)} numerical,"
        f" {len(categorical)} categorical), methods {methods};"
        f" frames {frame_bytes / 2**20:.0f} MiB"
    )

    gc.collect()
    started = time.perf_counter()
    detector = DriftDetector(policy, reference)
    prepare_s = time.perf_counter() - started
    started = time.perf_counter()
    lean_result = detector.check(current)
    check_s = time.perf_counter() - started
    lean_s = prepare_s + check_s
    del detector

    gc.collect()
    started = time.perf_counter()
    preset_result = preset(policy, reference, current)
    preset_s = time.perf_counter() - started

    gc.collect()
    tracemalloc.start()
    lean(policy, reference, current)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    identical = list(preset_result) == list(lean_result)
    if table:
        print(f"{'column':8} {'method':32} {'preset score':>14} {'lean score':>14} drift  same")
    differ = 0
    for column in policy.features.monitored:
        a, b = preset_result.get(column), lean_result[column]
        same = (
            a is not None
            and a.drifted == b.drifted
            and math.isclose(a.score, b.score, rel_tol=1e-9, abs_tol=1e-12)
            and math.isclose(float(a.threshold), float(b.threshold))
        )
        identical &= same
        differ += not same
        if table or not same:
            print(
                f"{column:8} {b.method[:32]:32} {a.score if a else float('nan'):14.6g}"
                f" {b.score:14.6g} {'yes' if b.drifted else 'no ':5} {'ok' if same else 'DIFF'}"
            )
    print(f"columns that differ: {differ} of {len(lean_result)}")
    print(
        f"lean peak memory {peak / 2**20:.0f} MiB = {peak / frame_bytes:.2f}x the two frames"
        f" ({frame_bytes / 2**20:.0f} MiB)"
    )
    print(
        f"preset {preset_s:.2f} s; lean {lean_s:.2f} s (reference {prepare_s:.2f} s + check"
        f" {check_s:.2f} s): {preset_s / lean_s:.1f}x cold, {preset_s / check_s:.1f}x warm"
    )
    return {
        "rows": str(rows),
        "cols": str(cols),
        "preset_s": f"{preset_s:.2f}",
        "lean_s": f"{lean_s:.2f}",
        "check_s": f"{check_s:.2f}",
        "speedup": f"{preset_s / lean_s:.1f}",
        "warm_speedup": f"{preset_s / check_s:.1f}",
        "identical": "true" if identical else "false",
        "peak_mb": f"{peak / 2**20:.0f}",
    }


def _timed_preset(policy: Policy, reference: pd.DataFrame, current: pd.DataFrame, columns: list):
    numerical = [c for c in columns if c in policy.features.numerical]
    categorical = [c for c in columns if c in policy.features.categorical]
    narrow = policy.model_copy(
        update={
            "features": policy.features.model_copy(
                update={"numerical": numerical, "categorical": categorical}
            )
        }
    )
    gc.collect()
    started = time.perf_counter()
    result = preset(narrow, reference[columns], current[columns])
    return time.perf_counter() - started, result


def wide_case(rows: int, cols: int, methods: str, widths: list[int], chunk: int) -> dict[str, str]:
    """The wide case: the lean path on every column (cold, warm, and the window streamed from a
    Parquet file ``chunk`` columns at a time, with each one's peak memory); Evidently's preset
    only on evenly spread samples of ``widths`` columns (the full width takes it far longer than
    a session here: measured > 30 min), its full-width time EXTRAPOLATED linearly from the two
    measured widths, whose per-column times show how linear it is. Verdicts compared on the
    sampled columns."""
    reference, current, numerical, categorical = frames(rows, cols)
    policy = policy_for(numerical, categorical, methods)
    names = policy.features.monitored
    frame_bytes = int(reference.memory_usage().sum() + current.memory_usage().sum())
    print(
        f"{rows:,} rows x {cols} columns ({len(numerical)} numerical,"
        f" {len(categorical)} categorical), methods {methods}; frames {frame_bytes / 2**20:.0f}"
        " MiB (shallow: the category strings are shared)"
    )
    gc.collect()
    started = time.perf_counter()
    detector = DriftDetector(policy, reference)
    prepare_s = time.perf_counter() - started
    started = time.perf_counter()
    lean_result = detector.check(current)
    check_s = time.perf_counter() - started
    lean_s = prepare_s + check_s
    print(f"lean, all {cols} columns: reference {prepare_s:.2f} s + check {check_s:.2f} s")

    gc.collect()
    tracemalloc.start()
    detector.check(current)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/window.parquet"
        current.to_parquet(path, index=False)

        def read(columns: list[str]) -> pd.DataFrame:
            return pq.read_table(path, columns=columns).to_pandas()

        gc.collect()
        tracemalloc.start()
        started = time.perf_counter()
        streamed = detector.check_chunks(read, chunk=chunk)
        stream_s = time.perf_counter() - started
        _, stream_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    window_mb = current.memory_usage().sum() / 2**20
    print(
        f"lean check peak memory (tracemalloc) beyond the frames and the prepared reference:"
        f" window in memory ({window_mb:.0f} MiB, not counted) {peak / 2**20:.0f} MiB; window"
        f" streamed from Parquet {chunk} columns at a time, reading included"
        f" {stream_peak / 2**20:.0f} MiB ({stream_s:.2f} s; same verdicts:"
        f" {'yes' if streamed == lean_result else 'NO'})"
    )
    del detector

    measured: list[tuple[int, float]] = []
    identical = streamed == lean_result
    differ = compared = 0
    for width in widths:
        step = max(cols // width, 1)
        columns = names[::step][:width]
        preset_s, preset_result = _timed_preset(policy, reference, current, columns)
        measured.append((len(columns), preset_s))
        for column in columns:
            a, b = preset_result.get(column), lean_result[column]
            same = (
                a is not None
                and a.drifted == b.drifted
                and math.isclose(a.score, b.score, rel_tol=1e-9, abs_tol=1e-12)
                and math.isclose(float(a.threshold), float(b.threshold))
            )
            compared += 1
            differ += not same
            identical &= same
        print(
            f"preset MEASURED on {len(columns)} of the {cols} columns (every {step}th):"
            f" {preset_s:.2f} s = {preset_s / len(columns):.3f} s per column"
        )
    (w1, t1), (w2, t2) = measured[0], measured[-1]
    slope = (t2 - t1) / (w2 - w1) if w2 != w1 else t2 / w2
    intercept = t1 - slope * w1
    preset_full = intercept + slope * cols
    print(
        f"preset time per column {t1 / w1:.3f} s at {w1} columns, {t2 / w2:.3f} s at {w2}:"
        f" linear fit {intercept:.2f} s + {slope:.3f} s x columns; EXTRAPOLATED (not measured)"
        f" to {cols} columns: {preset_full:.0f} s"
    )
    print(f"columns compared with the preset: {compared}, that differ: {differ}")
    print(
        f"lean {lean_s:.2f} s cold, {check_s:.2f} s warm: {preset_full / lean_s:.1f}x cold,"
        f" {preset_full / check_s:.1f}x warm against the EXTRAPOLATED preset time"
    )
    return {
        "rows": str(rows),
        "cols": str(cols),
        "preset_measured_cols": "/".join(str(w) for w, _ in measured),
        "preset_measured_s": "/".join(f"{t:.2f}" for _, t in measured),
        "preset_extrapolated_s": f"{preset_full:.0f}",
        "lean_s": f"{lean_s:.2f}",
        "check_s": f"{check_s:.2f}",
        "speedup_extrapolated": f"{preset_full / lean_s:.1f}",
        "warm_speedup_extrapolated": f"{preset_full / check_s:.1f}",
        "identical": "true" if identical else "false",
        "peak_mb": f"{peak / 2**20:.0f}",
        "stream_peak_mb": f"{stream_peak / 2**20:.0f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--methods", default="auto", help="auto, or NUM[,CAT] method names")
    parser.add_argument(
        "--wide",
        nargs="?",
        const="100000x1000",
        default=None,
        metavar="ROWSxCOLS",
        help="also run a wide case (default 100000x1000); its figures get a wide_ prefix",
    )
    parser.add_argument(
        "--wide-preset",
        default="25,100",
        metavar="W1,W2",
        help="the wide case's Evidently preset runs on W1 then W2 of its columns (evenly"
        " spread) and its full-width time is extrapolated linearly; 'all': run it on every"
        " column (measured, no extrapolation; about 15 minutes of one core at 100k x 1000 here)",
    )
    parser.add_argument(
        "--wide-chunk", type=int, default=100, help="columns per chunk of the streamed window"
    )
    parser.add_argument("--only-wide", action="store_true", help="skip the first case")
    args = parser.parse_args()

    figures = {} if args.only_wide else compare(args.rows, args.cols, args.methods, table=True)
    if args.wide:
        rows, _, cols = args.wide.partition("x")
        print()
        if args.wide_preset == "all":
            wide = compare(int(rows), int(cols), args.methods, table=False)
        else:
            widths = [int(w) for w in args.wide_preset.split(",")]
            wide = wide_case(int(rows), int(cols), args.methods, widths, args.wide_chunk)
        figures.update({f"wide_{k}": v for k, v in wide.items()})
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
