"""``reoptd backtest``: replay a history through the loop."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from reoptd.cli._common import (
    _logging,
    app,
)


@app.command()
def backtest(
    policy_file: Annotated[
        Path, typer.Option("--policy", help="The policy to backtest (YAML).", show_default=False)
    ],
    data: Annotated[
        Path,
        typer.Option(help="History to replay: a CSV or Parquet file.", show_default=False),
    ],
    report: Annotated[
        Path, typer.Option(help="Where to write the JSON report.", show_default=False)
    ],
    plot: Annotated[
        Path | None, typer.Option(help="Also draw the metric over time as a PNG.")
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option(
            help="Event-time column (default: the policy's `timestamp` if the file has it; "
            "otherwise row order is time, one row per second)."
        ),
    ] = None,
    warmup: Annotated[
        str, typer.Option(help="ROWS or DURATION before the first step; trains v1.")
    ] = "20%",
    step: Annotated[
        str, typer.Option(help="ROWS or DURATION per step (default: the policy's monitor.every).")
    ] = "",
    label_delay: Annotated[
        str, typer.Option(help="ROWS or DURATION until a row's label is visible to the daemon.")
    ] = "0",
    home: Annotated[
        Path | None,
        typer.Option(help="Keep the backtest's database and artifacts here (default: temporary)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every check.")] = False,
) -> None:
    """Replay a history through a policy and measure what re-optimization is worth.

    The file is replayed in time order through the daemon's own check -> decide -> optimize ->
    promote code on a simulated clock. Each step's rows are scored by the model in force before the
    step; their labels reach the daemon after --label-delay. Two baselines are scored on the same
    rows: `static` (the warm-up model, never changed) and `periodic` (retrained before every step
    on the policy's training window). --warmup also takes a percentage of the rows (20%).

    The JSON report holds: policy, policy_file, data, metric, higher_is_better, rows_scored, steps,
    seconds, options, served and baselines.static / baselines.periodic (each with value, retrains,
    promotions, optimize_seconds), and timeline (one entry per step: step, start, end, rows,
    champion_version, served, static, periodic, drift_share, decision, promoted).
    """
    from reoptd.backtest import parse_span, plot_report, run_backtest
    from reoptd.policy import format_duration, load_policy

    _logging(verbose)
    if not verbose:
        for name in ("reoptd.loop", "reoptd.optimize", "reoptd.backfill"):  # not across the bar
            logging.getLogger(name).setLevel(logging.WARNING)
    policy = load_policy(policy_file)
    warmup_span = _warmup_span(warmup, data)
    step_span = parse_span(step or format_duration(policy.monitor.every), "--step")
    result = run_backtest(
        policy,
        data,
        warmup=warmup_span,
        step=step_span,
        label_delay=parse_span(label_delay, "--label-delay"),
        time_column=time_column,
        home=home,
        policy_file=str(policy_file),
    )
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result, indent=2))
    if plot is not None:
        plot_report(result, plot)
    metric = result["metric"]
    typer.echo(
        f"{result['rows_scored']} rows in {result['steps']} steps, {result['seconds']:.1f}s"
        f" ({metric}, {'higher' if result['higher_is_better'] else 'lower'} is better)"
    )
    contenders = [("served", result["served"]), *result["baselines"].items()]
    for name, part in contenders:
        value = "n/a" if part["value"] is None else f"{part['value']:.4f}"
        typer.echo(
            f"  {name:9} {metric} {value}  retrains {part['retrains']:4d}"
            f"  promotions {part['promotions']:4d}  optimize {part['optimize_seconds']:.1f}s"
        )
    typer.echo(f"report: {report}" + (f", plot: {plot}" if plot else ""))


def _warmup_span(text: str, data: Path):
    """--warmup as rows, a duration, or a percentage of the file's rows."""
    from reoptd.backtest import BacktestError, Span, parse_span
    from reoptd.data import read_table
    from reoptd.policy import parse_fraction

    if not text.strip().endswith("%"):
        return parse_span(text, "--warmup")
    try:
        share = parse_fraction(text)
    except ValueError:
        raise BacktestError(
            f"--warmup: expected rows, a duration or a percentage, got {text!r}"
        ) from None
    if not data.exists():
        raise BacktestError(f"{data}: no such file")
    return Span(rows=max(1, round(len(read_table(data)) * share)))
