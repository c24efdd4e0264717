"""``reoptd policy …``: validate, explain and describe policy files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from reoptd import app as assemble
from reoptd.cli._common import (
    _logging,
    _settings,
    policy_app,
)


@policy_app.command("validate")
def policy_validate(files: Annotated[list[Path], typer.Argument(help="Policy files.")]) -> None:
    """Check policy files; print every problem with file, line and field. Exit 1 on any error.
    Valid policies that cannot work as written (a trigger that can never fire) get warnings,
    which do not change the exit code."""
    from reoptd.errors import PolicyError
    from reoptd.policy import load_policy, policy_warnings

    failed = False
    for file in files:
        try:
            policy = load_policy(file)
        except PolicyError as exc:
            failed = True
            for problem in exc.problems:
                typer.echo(problem, err=True)
            continue
        typer.echo(f"{file}: ok (model {policy.model})")
        for warning in policy_warnings(policy):
            typer.echo(f"{file}: warning: {warning}", err=True)
    if failed:
        raise typer.Exit(1)


@policy_app.command("explain")
def policy_explain(
    file: Annotated[Path, typer.Argument(help="A policy file.")],
    history: Annotated[
        str | None,
        typer.Option(
            help="Replay this model's last checks (from the registry) through the policy: which "
            "triggers would fire and why."
        ),
    ] = None,
    last: Annotated[int, typer.Option(help="How many checks --history shows.")] = 10,
) -> None:
    """Say in plain English what the policy will do; with --history MODEL, what it would have
    decided on that model's recent checks."""
    from reoptd.policy import explain, load_policy

    policy = load_policy(file)
    if history is None:
        for line in explain(policy):
            typer.echo(line)
        return
    from reoptd.policy import checks_needed, decide

    registry = assemble.open_registry(_settings())
    replay = registry.replay_states(history, limit=last + 10 + checks_needed(policy))
    shown = replay[-last:]
    if not shown:
        typer.echo(f"{history}: no checks recorded yet")
        return
    for index, (check, state) in enumerate(replay):
        if (check, state) not in shown:
            continue
        views = [c for c, _ in replay[: index + 1]]
        head = f"{check.at:%Y-%m-%d %H:%M} v{check.champion_version} {check.status}"
        if check.status != "ok":
            typer.echo(f"{head}: not judged (check {check.status})")
            continue
        decision = decide(policy, views, state, check.at)
        verdict = f"RE-OPTIMIZE ({', '.join(decision.triggers)})" if decision.fire else "hold"
        typer.echo(f"{head}: {verdict}")
        for reason in decision.reasons:
            typer.echo(f"    {reason}")


@policy_app.command("schema")
def policy_schema() -> None:
    """Print the policy file's JSON Schema (for editor completion)."""
    from reoptd.policy import Policy

    typer.echo(json.dumps(Policy.model_json_schema(by_alias=True), indent=2))


@policy_app.command("tune")
def policy_tune(
    policy_file: Annotated[
        Path, typer.Option("--policy", help="The base policy (YAML).", show_default=False)
    ],
    data: Annotated[
        Path, typer.Option(help="History to search on: a CSV or Parquet file.", show_default=False)
    ],
    trials: Annotated[int, typer.Option(min=1, help="Backtests the search runs in all.")] = 60,
    budget: Annotated[
        str | None,
        typer.Option(help="Start no trial after this long (15m); the front is then measured."),
    ] = None,
    holdout: Annotated[
        str, typer.Option(help="Newest share of the rows never searched, only reported on.")
    ] = "30%",
    pick: Annotated[
        str,
        typer.Option(help="Which front policy --out writes: knee, max-value or 'max-retrains N'."),
    ] = "knee",
    out: Annotated[Path | None, typer.Option(help="Write the picked policy here (YAML).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Draw the front as a PNG.")] = None,
    cost: Annotated[
        str, typer.Option(help="The cost objective: retrains or seconds (of re-optimization).")
    ] = "retrains",
    study: Annotated[
        str | None,
        typer.Option(help="Study name in the daemon's database (default policy-tune-MODEL)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Sampler seed.")] = 0,
    phases: Annotated[
        int,
        typer.Option(
            min=1,
            help="Grids of checks each trial is backtested on, each a 1/N step later; its"
            " scores are their mean.",
        ),
    ] = 4,
    time_column: Annotated[
        str | None, typer.Option(help="Event-time column, as for `reoptd backtest`.")
    ] = None,
    warmup: Annotated[
        str,
        typer.Option(
            help="ROWS, DURATION or share of the searched rows before a trial's 1st step."
        ),
    ] = "20%",
    step: Annotated[
        str, typer.Option(help="ROWS or DURATION per step (default: the policy's monitor.every).")
    ] = "",
    label_delay: Annotated[
        str, typer.Option(help="ROWS or DURATION until a row's label is visible to the daemon.")
    ] = "0",
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Trials at once (default: REOPTD_SLOTS or one per core with REOPTD_EXECUTOR"
            " local, the Ray cluster's room with ray); 1: one at a time in this process.",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every check.")] = False,
) -> None:
    """Search the policy itself: which triggers, thresholds and guards give the most value for
    the least re-optimization, measured by backtests of your own history.

    **Objectives.** An Optuna multi-objective study: the served metric of a backtest (the
    policy's promote metric, up or down as it prefers) against its cost, the re-optimizations it
    ran (--cost retrains) or their compute seconds (--cost seconds), both down. The knobs: each
    trigger of the base policy on or off with its thresholds and `for`, a `max_age` trigger,
    `monitor.drift`'s thresholds (when a drift trigger is on), `guards.cooldown`, `train.window`
    and `promote.min_improvement`; the rest of the file is kept. The first trials are the base
    policy and three faster-reacting variants of it (shortest window, no cooldown, triggers
    firing on their first check).

    **Holdout.** The history is cut by time: trials backtest the older rows only; then every
    Pareto-optimal policy, the base policy and the static (never retrain) and periodic (retrain
    before every step) baselines are backtested on the newest --holdout rows, which no trial saw.
    The table shows both; trust the held-out columns.

    **Phases.** How often a policy fires depends on where a change falls between two checks,
    and a deployed policy's checks fall wherever its start put them. So each trial backtests the
    searched rows --phases times, the steps starting 1/N of a step later each time, and is
    scored by the mean of its runs: its search retrains can be fractional (4.5). Held-out runs
    use the grid as given.

    **--pick** chooses on the search scores (never the held-out ones): knee is the front's knee,
    the point farthest above the line from its cheapest to its most valuable policy (each axis
    scaled to that span: most of the value at a small share of the cost); max-value the best
    metric; 'max-retrains N' the best metric with at most N retrains in the searched rows.
    --out writes that policy with a comment saying how it was chosen and what it scored; it
    validates and runs in the daemon as it is.

    **Where trials run.** By REOPTD_EXECUTOR, like re-optimizations: local (the default) runs
    --jobs trials at once in worker processes of this machine (default REOPTD_SLOTS, else one
    per usable core), ray runs each trial's backtest as a task on the Ray cluster at
    REOPTD_RAY_ADDRESS (REOPTD_RAY_CPUS each; default as many at once as its CPUs hold), inline
    one at a time in this process, as does --jobs 1 on any executor. This process alone asks
    Optuna for each trial's knobs and records its scores; inside a trial the policy's own
    re-optimizations run in the trial's worker. The front's held-out backtests run the same way.

    The study lives in the daemon's database (REOPTD_DB_URL, else SQLite in REOPTD_HOME), like
    the tune step's studies: run the same command again (same --study) to resume it or, with
    more --trials, extend it; optuna-dashboard shows it. --budget and Ctrl-C start no new
    trial; with Ctrl-C the running ones are recorded as failed, and a rerun goes on from there.
    """
    from reoptd.backtest import parse_span
    from reoptd.policy import format_duration, load_policy, parse_duration, parse_fraction
    from reoptd.policy_tune import (
        TuneError,
        parse_pick,
        plot_front,
        table,
        tune_policy,
        write_policy,
    )
    from reoptd.policy_tune import pick as choose

    _logging(verbose)
    if not verbose:
        for name in ("reoptd.loop", "reoptd.optimize", "reoptd.backfill", "reoptd.backtest"):
            logging.getLogger(name).setLevel(logging.WARNING)
    # a failed trial (a candidate the history cannot run, say a window too short to train on)
    # is logged in one line by reoptd.policy_tune, not with Optuna's traceback
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    choice = parse_pick(pick)
    if cost not in ("retrains", "seconds"):
        raise TuneError(f"--cost: expected retrains or seconds, got {cost!r}")
    try:
        share = parse_fraction(holdout)
        limit = parse_duration(budget) if budget else None
    except ValueError as exc:
        raise TuneError(f"--holdout {holdout!r} / --budget {budget!r}: {exc}") from None
    base = load_policy(policy_file)
    try:
        first = (
            parse_fraction(warmup)
            if warmup.strip().endswith("%")
            else parse_span(warmup, "--warmup")
        )
    except ValueError as exc:
        raise TuneError(f"--warmup {warmup!r}: {exc}") from None
    registry = assemble.open_registry(_settings())
    try:
        storage = registry.optuna_storage
        if storage is None:
            typer.echo(
                "note: the store keeps no Optuna studies; this one lives in memory", err=True
            )
        result = tune_policy(
            policy_file,
            data,
            storage=storage,
            study_name=study,
            trials=trials,
            budget=limit,
            holdout=share,
            warmup=first,
            step=parse_span(step or format_duration(base.monitor.every), "--step"),
            label_delay=parse_span(label_delay, "--label-delay"),
            time_column=time_column,
            cost="seconds" if cost == "seconds" else "retrains",
            seed=seed,
            jobs=jobs,
            phases=phases,
        )
    finally:
        registry.close()
    chosen = choose(result, choice)
    typer.echo(
        f"study {result.study}: {result.trials} trials ({result.failed} failed), front of"
        f" {len(result.front)}, {result.seconds:.0f}s ({result.where}); searched"
        f" {result.search_rows} rows (each trial on {result.grids()}), held out"
        f" {result.holdout_rows}"
    )
    typer.echo(table(result, chosen))
    typer.echo(f"* picked by --pick {choice}")
    if plot is not None:
        plot_front(result, chosen, plot)
        typer.echo(f"plot: {plot}")
    if out is not None:
        write_policy(result, chosen, choice, out, policy_file, data)
        typer.echo(f"policy: {out}")
