"""``reoptd check`` and ``reoptd optimize``: one cycle, one re-optimization."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from reoptd import app as assemble
from reoptd.cli._common import (
    ClockOpt,
    ExecutorOpt,
    PoliciesOpt,
    _iso,
    _logging,
    _settings,
    app,
)
from reoptd.errors import ReoptdError

#: how long `check` and `optimize` wait for the daemon's cycle or run of the model (seconds)
CLI_WAIT = 10.0


@app.command()
def check(
    model: Annotated[str, typer.Argument(help="Model name (the policy's `model:`).")],
    policies: PoliciesOpt = None,
    clock: ClockOpt = "auto",
    html: Annotated[
        Path | None,
        typer.Option(
            help="Also write Evidently's HTML drift report (DataDriftPreset with the policy's "
            "methods and thresholds, the champion's reference vs the checked window) to this file."
        ),
    ] = None,
    at: Annotated[
        datetime | None,
        typer.Option(
            "--at",
            help="Run the cycle at this instant instead of now (ISO time, UTC unless it says "
            "otherwise), e.g. 2026-03-14T12:00 to check a window of historical data.",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"],
        ),
    ] = None,
) -> None:
    """Run one monitoring cycle for MODEL now (or --at TIME): check, decide, re-optimize if the
    policy says so. A first cycle trains version 1 and checks the window with it."""
    from reoptd.clock import utc
    from reoptd.cycle import ModelLoop
    from reoptd.metrics import Metrics

    _logging()
    settings = _settings(policies)
    policy = assemble.find_policy(settings.policies, model)
    registry = assemble.open_registry(settings)
    now = utc(at) if at is not None else assemble.make_clock(clock, [policy], registry).now()
    loop = ModelLoop(policy, registry, Metrics())
    with registry.model_lock(policy.model, wait=CLI_WAIT):  # not beside the daemon's cycle
        loop.start()
        outcome = loop.cycle(now)
    _say_where_the_data_is(loop, now, outcome)
    if outcome.check is None and outcome.error is not None:  # nothing could be recorded
        raise ReoptdError(f"{policy.model}: the cycle could not be recorded: {outcome.error}")
    if html is not None:
        from reoptd.monitor import write_drift_html

        window = loop.source.read(now - policy.monitor.window, now)
        if window.empty:
            raise ReoptdError(f"{policy.model}: the window ending now is empty; no HTML report")
        champion = loop.reference(loop.policy, loop.source, loop.champion(), now)
        written = write_drift_html(
            loop.policy,
            champion.reference,
            window,
            html,
            version=champion.version,
            window_range=(now - policy.monitor.window, now),
        )
        typer.echo(f"wrote Evidently's drift report for {policy.model} to {written}")
    _exit_on_failure(policy.model, outcome)


def _exit_on_failure(model: str, outcome: Any) -> None:
    """Exit 1, logged at ERROR, when the cycle's check or its re-optimization (a bootstrap
    included) failed."""
    log = logging.getLogger("reoptd.cli")
    failed = False
    if outcome.check is not None and outcome.check.status == "failed":
        log.error("%s: check failed: %s", model, outcome.check.reason)
        failed = True
    if outcome.run is not None and outcome.run.outcome == "failed":
        log.error(
            "%s: re-optimization (%s) failed: %s", model, outcome.run.trigger, outcome.run.reason
        )
        failed = True
    if failed:
        raise typer.Exit(1)


@app.command()
def optimize(
    model: Annotated[
        str | None, typer.Argument(help="Model name (the policy's `model:`).", show_default=False)
    ] = None,
    policies: PoliciesOpt = None,
    policy_file: Annotated[
        Path | None,
        typer.Option("--policy", help="A policy file, instead of MODEL from --policies."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Optimize on this CSV/Parquet file instead of the policy's source."),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated steps to run instead of the policy's pipeline, e.g. "
            "retrain,tune (validate is kept when the policy has it); `compress` alone compresses "
            "the current champion."
        ),
    ] = None,
    clock: ClockOpt = "auto",
    executor: ExecutorOpt = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Write the run as JSON: model, trigger, outcome, reason, champion_version, "
            "challenger_version, seconds, steps {step: {seconds, ...}}, policy; with a tune step "
            "also trials, best_params, best_value; with a compress step also candidates (name, "
            "methods, metric, size_bytes, latency_p50_ms, latency_p95_ms, batch_size) and chosen."
        ),
    ] = None,
) -> None:
    """Re-optimize a model now, whatever its triggers say: run the pipeline, validate, promote if
    the challenger wins. Exit 1 if the run failed.

    With --policy FILE --data FILE it optimizes on a file (state in $REOPTD_HOME), e.g. to try a
    tuning setup before deploying it.
    """
    from reoptd.cycle import ModelLoop
    from reoptd.metrics import Metrics
    from reoptd.optimize import open_executor
    from reoptd.policy import load_policy

    _logging()
    settings = _settings(policies)
    runner = open_executor(executor or settings.executor, settings.slots)
    if policy_file is not None:
        policy = load_policy(policy_file)
    elif model is not None:
        policy = assemble.find_policy(settings.policies, model)
    else:
        raise ReoptdError("name a MODEL, or give --policy FILE (with --data FILE)")
    if steps:
        policy = _with_steps(policy, steps)
    registry = assemble.open_registry(settings)
    source = None
    if data is not None:
        source, now = _file_source(policy, data)
        policy = policy.model_copy(update={"timestamp": source.timestamp})
    else:
        now = assemble.make_clock(clock, [policy], registry).now()
    loop = ModelLoop(policy, registry, Metrics(), source=source, executor=runner)
    loop.progress = sys.stderr.isatty()
    with registry.model_lock(policy.model, wait=CLI_WAIT):  # not beside the daemon's run
        loop.start()
        run_row = loop.optimize(now, trigger="manual")
    if report is not None:
        document: dict[str, Any] = {
            "model": policy.model,
            "trigger": run_row.trigger,
            "outcome": run_row.outcome,
            "reason": run_row.reason,
            "champion_version": run_row.champion_version,
            "challenger_version": run_row.challenger_version,
            "started_at": _iso(run_row.started_at),
            "seconds": run_row.seconds,
            "steps": run_row.steps,
            "policy": policy.model_dump(mode="json", by_alias=True),
        }
        tune = run_row.steps.get("tune")
        if tune:
            document.update(
                trials=tune["trials"],
                best_params=tune["best_params"],
                best_value=tune["best_value"],
            )
        compress = run_row.steps.get("compress")
        if compress:
            document.update(candidates=compress["candidates"], chosen=compress["chosen"])
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(document, indent=2))
    if run_row.outcome == "failed":
        logging.getLogger("reoptd.cli").error(
            "%s: re-optimization failed: %s", policy.model, run_row.reason
        )
        raise typer.Exit(1)


def _say_where_the_data_is(loop, now: datetime, outcome) -> None:
    """After a cycle that found no rows to check or train on: what "now" was, and the time range
    the data covers (for file sources), so a user checking March data with today's clock sees it."""
    empty = (outcome.check is not None and outcome.check.status == "skipped") or (
        outcome.run is not None
        and outcome.run.outcome == "failed"
        and " rows " in (outcome.run.reason or "")
    )
    if not empty:
        return
    covered = _data_range(loop.source, loop.policy.timestamp)
    what = (
        f"the data covers {covered[0]:%Y-%m-%d %H:%M} to {covered[1]:%Y-%m-%d %H:%M} UTC"
        " (use --at TIME inside it)"
        if covered is not None
        else "the data's time range is unknown for this source"
    )
    typer.echo(f"{loop.policy.model}: now was {now:%Y-%m-%d %H:%M} UTC; {what}", err=True)


def _data_range(source, timestamp: str) -> tuple[datetime, datetime] | None:
    """The first and last row time of a file source (or a replay), None for other sources."""
    from datetime import UTC

    from reoptd.data import FileSource, ReplaySource
    from reoptd.errors import DataError

    production = getattr(source, "production", source)  # labels joined to a production source
    if isinstance(production, ReplaySource):
        ts = production.frame[production.timestamp]
    elif isinstance(production, FileSource):
        try:
            frame = production.read(
                datetime(1970, 1, 1, tzinfo=UTC), datetime(2262, 1, 1, tzinfo=UTC)
            )
        except DataError:
            return None
        ts = frame[timestamp]
    else:
        return None
    if ts.empty:
        return None
    return ts.min().to_pydatetime(), ts.max().to_pydatetime()


def _with_steps(policy, steps: str):
    from reoptd.policy import Policy

    names = [s.strip() for s in steps.split(",") if s.strip()]
    if "validate" in policy.steps and "validate" not in names:
        names.append("validate")
    data = policy.model_dump(mode="json", by_alias=True)
    budgets = {s.name: s.budget for s in policy.pipeline}
    data["pipeline"] = [
        {"name": n, "budget": None if budgets.get(n) is None else budgets[n].total_seconds()}
        for n in names
    ]
    try:
        return Policy.model_validate(data)
    except ValueError as exc:
        raise ReoptdError(f"--steps {steps}: {exc}") from None


def _file_source(policy, data: Path):
    """A replay of ``data`` seen from just after its last row (all labels present)."""
    import numpy as np
    import pandas as pd

    from reoptd.backtest import load_history
    from reoptd.data import ReplaySource

    history = load_history(data, policy)
    source = ReplaySource(
        history.frame,
        history.policy.timestamp,
        history.policy.target,
        np.array(history.ts),
    )
    last = history.frame[history.policy.timestamp].iloc[-1]
    now = last.floor("us") + pd.Timedelta(microseconds=1)  # a datetime holds no nanoseconds
    return source, now.to_pydatetime()
