"""The ``reoptd`` command line (typer). Every command prints a clear error, never a traceback."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError

from reoptd import app as assemble
from reoptd.errors import ReoptdError
from reoptd.settings import Settings

app = typer.Typer(
    help="reoptd keeps production ML models optimized: it watches production data, detects drift "
    "with Evidently, re-optimizes when a policy says so, validates the challenger against the "
    "champion, promotes it, and exports every step as Prometheus metrics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)
models_app = typer.Typer(help="Inspect the registry and change champions.", no_args_is_help=True)
policy_app = typer.Typer(help="Validate and inspect policy files.", no_args_is_help=True)
demo_app = typer.Typer(help="The built-in demo stream.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(policy_app, name="policy")
app.add_typer(demo_app, name="demo")

PoliciesOpt = Annotated[
    Path | None,
    typer.Option(
        "--policies",
        help="Directory of policy YAML files (default: $REOPTD_POLICIES, else the embedded demo).",
        show_default=False,
    ),
]
ClockOpt = Annotated[
    str,
    typer.Option(
        help="auto: a simulated clock for demo policies, the system clock otherwise; "
        "or 'system' / 'simulated'."
    ),
]


def _settings(policies: Path | None = None) -> Settings:
    settings = Settings()
    if policies is not None:
        settings.policies = policies
    return settings


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("apscheduler", "evidently", "httpx", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
def run(
    policies: PoliciesOpt = None,
    exit_after: Annotated[
        float | None, typer.Option(help="Stop by itself after this many seconds.")
    ] = None,
    clock: ClockOpt = "auto",
    speed: Annotated[
        float | None,
        typer.Option(
            help=f"Simulated seconds per real second (demo default {assemble.DEMO_SPEED:g})."
        ),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Port of /metrics (default $REOPTD_METRICS_PORT or 9464).")
    ] = None,
    api_host: Annotated[
        str | None,
        typer.Option(help="Address of the HTTP API (default $REOPTD_API_HOST or 127.0.0.1)."),
    ] = None,
    api_port: Annotated[
        int | None,
        typer.Option(help="Port of the HTTP API (default $REOPTD_API_PORT or 8464; 0: any free)."),
    ] = None,
    no_api: Annotated[bool, typer.Option("--no-api", help="Do not serve the HTTP API.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the daemon: one monitoring job per policy, /metrics on 127.0.0.1:9464, the HTTP API
    on 127.0.0.1:8464 (mutating routes need REOPTD_API_TOKEN).

    Without --policies it runs the embedded demo (policy `demo_churn` on the built-in demo stream,
    on a simulated clock) with SQLite under $REOPTD_HOME (default ./.reoptd). Ctrl-C or SIGTERM
    stops it cleanly.
    """
    from reoptd.loop import ModelLoop
    from reoptd.metrics import Metrics
    from reoptd.service import Service

    _logging(verbose)
    log = logging.getLogger("reoptd")
    settings = _settings(policies)
    loaded, errors = assemble.read_policies(settings.policies)
    for error in errors:
        log.error("skipping policy %s:\n  %s", error.path, "\n  ".join(error.problems))
    if not loaded:
        raise ReoptdError("no valid policy to run; fix the errors above")
    metrics = Metrics(max_features=settings.max_feature_series, process=True)
    registry = assemble.open_registry(settings, metrics)
    if speed is None and assemble.is_demo(loaded):
        speed = assemble.DEMO_SPEED
    the_clock = assemble.make_clock(clock, loaded, registry, speed)
    metrics.watch_champions(registry, the_clock)
    loops = [ModelLoop(p, registry, metrics) for p in loaded]
    log.info(
        "reoptd starting: %d model(s) [%s], database %s, clock %s at %s",
        len(loops),
        ", ".join(p.model for p in loaded),
        registry.engine.url.render_as_string(hide_password=True),
        type(the_clock).__name__ + (f" x{speed:g}" if speed and clock != "system" else ""),
        the_clock.now().isoformat(timespec="seconds"),
    )
    service = Service(
        loops,
        the_clock,
        metrics,
        metrics_host=settings.metrics_host,
        metrics_port=metrics_port or settings.metrics_port,
    )
    if not no_api:
        from reoptd.api import ApiServer, create_app

        token = settings.api_token.get_secret_value() if settings.api_token else None
        app = create_app(
            registry,
            loaded,
            the_clock,
            token=token,
            scheduler_running=lambda: service.scheduler.running,
            max_body_bytes=settings.api_max_body_bytes,
            max_rows=settings.api_max_rows,
        )
        host = api_host or settings.api_host
        service.api = ApiServer(app, host, settings.api_port if api_port is None else api_port)
        if token is None:
            log.info("API: mutating routes disabled (set REOPTD_API_TOKEN to enable them)")
    service.run(exit_after)


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
) -> None:
    """Run one monitoring cycle for MODEL now: check, decide, re-optimize if the policy says so."""
    from reoptd.loop import ModelLoop
    from reoptd.metrics import Metrics

    _logging()
    settings = _settings(policies)
    policy = assemble.find_policy(settings.policies, model)
    registry = assemble.open_registry(settings)
    the_clock = assemble.make_clock(clock, [policy], registry)
    now = the_clock.now()
    loop = ModelLoop(policy, registry, Metrics())
    outcome = loop.cycle(now)
    if html is not None:
        from reoptd.monitor._html import write_drift_html

        window = loop.source.read(now - policy.monitor.window, now)
        if window.empty:
            raise ReoptdError(f"{policy.model}: the window ending now is empty; no HTML report")
        written = write_drift_html(policy, loop.champion().reference, window, html)
        typer.echo(f"wrote Evidently's drift report for {policy.model} to {written}")
    if outcome.check is not None and outcome.check.status == "failed":
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
    from reoptd.loop import ModelLoop
    from reoptd.metrics import Metrics
    from reoptd.policy import load_policy

    _logging()
    settings = _settings(policies)
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
    loop = ModelLoop(policy, registry, Metrics(), source=source)
    loop.progress = sys.stderr.isatty()
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
        raise typer.Exit(1)


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

    from reoptd.backtest._history import load_history
    from reoptd.data import ReplaySource

    history = load_history(data, policy)
    source = ReplaySource(
        history.frame,
        history.policy.timestamp,
        history.policy.target,
        np.array(history.ts),
    )
    now = history.frame[history.policy.timestamp].iloc[-1] + pd.Timedelta(microseconds=1)
    return source, now.to_pydatetime()


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
        for name in ("reoptd.loop", "reoptd.optimize"):
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


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Models, champion versions, last checks and decisions.

    --json prints {"models": [{"name", "champion_version", "versions" (count), "last_check"
    (ISO time), "last_check_status", "drift_share", "last_decision" {"at", "fire", "triggers",
    "reasons"}, "metrics" and "estimated" (the last check's measured and label-free metrics),
    "last_backfill" {"at", "window_end", "labelled_rows_before", "labelled_rows", "metrics"}}]}.
    """
    registry = assemble.open_registry(_settings())
    entries = []
    for model in registry.models():
        checks = registry.checks(model.name, limit=1)
        decision = registry.last_decision(model.name)
        last = checks[-1] if checks else None
        entries.append(
            {
                "name": model.name,
                "champion_version": model.champion_version,
                "versions": len(registry.versions(model.name)),
                "last_check": _iso(last.at) if last else None,
                "last_check_status": last.status if last else None,
                "drift_share": last.drift_share if last else None,
                "metrics": dict(last.metrics) if last else {},
                "estimated": dict((last.signals or {}).get("estimated") or {}) if last else {},
                "last_backfill": _last_backfill(registry, model.name),
                "last_decision": None
                if decision is None
                else {
                    "at": _iso(decision.at),
                    "fire": decision.fire,
                    "triggers": decision.triggers,
                    "reasons": decision.reasons,
                },
            }
        )
    if as_json:
        typer.echo(json.dumps({"models": entries}, indent=2))
        return
    if not entries:
        typer.echo("no models yet: start the daemon with `reoptd run`")
        return
    for e in entries:
        share = "n/a" if e["drift_share"] is None else f"{e['drift_share']:.2f}"
        typer.echo(
            f"{e['name']}: champion v{e['champion_version']} of {e['versions']} versions;"
            f" last check {e['last_check']} ({e['last_check_status']}), drift share {share}"
        )
        if e["estimated"]:
            shown = ", ".join(f"{k} {v:.3f}" for k, v in e["estimated"].items())
            typer.echo(f"  estimated without labels: {shown}")
        if e["last_backfill"]:
            b = e["last_backfill"]
            shown = ", ".join(f"{k} {v:.3f}" for k, v in b["metrics"].items())
            typer.echo(
                f"  last backfill {b['at']}: window ending {b['window_end']} re-scored with"
                f" {b['labelled_rows']} labels (had {b['labelled_rows_before']}): {shown}"
            )
        if e["last_decision"]:
            d = e["last_decision"]
            verdict = "re-optimize" if d["fire"] else "hold"
            typer.echo(f"  last decision {d['at']}: {verdict} — {d['reasons']}")


def _last_backfill(registry, name: str) -> dict | None:
    """The most recently re-scored past window among the model's recent checks."""
    done = [
        (c, (c.signals or {})["backfill"])
        for c in registry.checks(name, limit=200)
        if "metrics" in ((c.signals or {}).get("backfill") or {})
    ]
    if not done:
        return None
    check, record = max(done, key=lambda pair: pair[1]["at"])
    return {
        "at": record["at"],
        "window_end": _iso(check.window_end),
        "labelled_rows_before": record["labelled_rows_before"],
        "labelled_rows": record["labelled_rows"],
        "metrics": record["metrics"],
    }


@models_app.command("list")
def models_list() -> None:
    """Every model with its champion version."""
    registry = assemble.open_registry(_settings())
    for model in registry.models():
        versions = registry.versions(model.name)
        typer.echo(
            f"{model.name}\t{model.task}\tchampion v{model.champion_version}"
            f"\t{len(versions)} versions"
        )


@models_app.command("show")
def models_show(model: str) -> None:
    """MODEL's versions (status, trigger, holdout metrics) and its champion history."""
    registry = assemble.open_registry(_settings())
    row = registry.model(model)
    typer.echo(f"{row.name} ({row.task}): champion v{row.champion_version}")
    tunes = {
        r.challenger_version: r.steps["tune"] for r in registry.runs(model) if "tune" in r.steps
    }
    for v in registry.versions(model):
        holdout = v.metrics.get("holdout", {})
        rival = v.metrics.get("champion_on_holdout", {})
        metric = v.metrics.get("metric", "")
        score = f"{metric} {holdout[metric]:.4f}" if metric in holdout else ""
        versus = f" vs parent {rival[metric]:.4f}" if metric in rival else ""
        typer.echo(
            f"  v{v.version}\t{v.status:9}\t{v.trigger:12}\t{_iso(v.created_at)}\t"
            f"{v.train_rows} rows\t{score}{versus}\t{v.sha256[:12]}"
        )
        tune = tunes.get(v.version)
        if tune:
            params = ", ".join(f"{k}={_short(x)}" for k, x in tune["best_params"].items())
            typer.echo(
                f"      tune: study {tune['study']}, {tune['trials']} trials"
                f" ({tune['pruned']} pruned, {tune['warm_trials']} warm), best"
                f" {tune['best_value']:.4f} at trial {tune['best_trial']}: {params}"
            )
        packed = v.metrics.get("compression")
        if packed and packed.get("methods"):
            typer.echo(
                f"      compress: {packed['name']}, {packed['size_bytes']} bytes,"
                f" p50 {packed['latency_p50_ms']:.3f} ms at batch {packed['batch_size']}"
            )
    for e in registry.events(model):
        typer.echo(f"  {_iso(e.at)} {e.kind} v{e.from_version} -> v{e.to_version}: {e.reason}")


@models_app.command("promote")
def models_promote(model: str, version: int) -> None:
    """Make VERSION of MODEL the champion (one transaction; its artifact is verified first)."""
    from reoptd.clock import SystemClock

    registry = assemble.open_registry(_settings())
    event = registry.promote(model, version, at=SystemClock().now(), reason="manual (CLI)")
    typer.echo(f"{model}: champion v{event.from_version} -> v{event.to_version}")


@models_app.command("rollback")
def models_rollback(model: str) -> None:
    """Return MODEL to the champion before the current one."""
    from reoptd.clock import SystemClock

    registry = assemble.open_registry(_settings())
    event = registry.rollback(model, at=SystemClock().now(), reason="manual rollback (CLI)")
    typer.echo(f"{model}: rolled back v{event.from_version} -> v{event.to_version}")


@models_app.command("approve")
def models_approve(
    model: str,
    version: Annotated[
        int | None, typer.Argument(help="Default: the newest version waiting for approval.")
    ] = None,
) -> None:
    """Promote a version that won validation and waits for approval (promote.mode: manual)."""
    from reoptd.clock import SystemClock

    registry = assemble.open_registry(_settings())
    event = registry.approve(model, version, at=SystemClock().now(), reason="approved (CLI)")
    typer.echo(f"{model}: approved, champion v{event.from_version} -> v{event.to_version}")


@policy_app.command("validate")
def policy_validate(files: Annotated[list[Path], typer.Argument(help="Policy files.")]) -> None:
    """Check policy files; print every problem with file, line and field. Exit 1 on any error."""
    from reoptd.errors import PolicyError
    from reoptd.policy import load_policy

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


@demo_app.command("export")
def demo_export(
    out: Annotated[Path, typer.Argument(help="A .parquet or .csv file to write.")],
    hours: Annotated[float, typer.Option(help="Hours of stream from the demo's start.")] = 12,
    history: Annotated[float, typer.Option(help="Hours of history before the start.")] = 3,
    seed: int = 7,
) -> None:
    """Write the demo stream (all labels present) to a file, e.g. to try `reoptd backtest`.

    The drift point lies 3 hours after the demo's start (2026-01-02T03:00Z).
    """
    from datetime import timedelta

    from reoptd.data import _demo

    source = _demo.DemoSource(seed=seed, label_delay=timedelta(0))
    frame = source.read(
        _demo.START - timedelta(hours=history), _demo.START + timedelta(hours=hours)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    typer.echo(
        f"{out}: {len(frame)} rows from {frame['ts'].iloc[0]:%Y-%m-%d %H:%M} to"
        f" {frame['ts'].iloc[-1]:%Y-%m-%d %H:%M} UTC; drift at {_demo.DRIFT_AT:%Y-%m-%d %H:%M}"
    )


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> Any:
    try:
        return app(args=argv)
    except ReoptdError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except SQLAlchemyError as exc:  # the database failed under us: say so, without a traceback
        typer.echo(f"error: database: {exc.__class__.__name__}: {exc.orig or exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
