"""``reoptd run``: the daemon."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from reoptd import app as assemble
from reoptd.cli._common import (
    ClockOpt,
    ExecutorOpt,
    LogFormat,
    LogFormatOpt,
    PoliciesOpt,
    _logging,
    _settings,
    app,
)
from reoptd.errors import ReoptdError


@app.command()
def run(
    policies: PoliciesOpt = None,
    exit_after: Annotated[
        float | None, typer.Option(help="Stop by itself after this many seconds.")
    ] = None,
    clock: ClockOpt = "auto",
    executor: ExecutorOpt = None,
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
    log_format: LogFormatOpt = LogFormat.text,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    replay: Annotated[
        Path | None,
        typer.Option(
            help="Replay this CSV/Parquet history through the daemon instead of serving: a "
            "simulated clock from the data's first row plus the training window to its last row, "
            "a cycle every monitor.every, state in the usual store. Labels come from the file's "
            "target column or the policy's data.labels files (their `arrived` time respected).",
        ),
    ] = None,
    label_delay: Annotated[
        str,
        typer.Option(
            help="With --replay: labels become visible this long (6h) or this many rows "
            "after their row (default 0: at once, or at their `arrived` time)."
        ),
    ] = "0",
) -> None:
    """Run the daemon: one monitoring job per policy, /metrics on 127.0.0.1:9464, the HTTP API
    on 127.0.0.1:8464 (mutating routes need REOPTD_API_TOKEN).

    Without --policies it runs the embedded demo (policy `demo_churn` on the built-in demo stream,
    on a simulated clock) with SQLite under $REOPTD_HOME (default ./.reoptd). Ctrl-C or SIGTERM
    stops it cleanly.
    """
    from reoptd.cycle import ModelLoop, PolicyWatcher
    from reoptd.metrics import Metrics
    from reoptd.optimize import open_executor
    from reoptd.service import Service

    _logging(verbose, log_format)
    log = logging.getLogger("reoptd")
    settings = _settings(policies)
    loaded, errors = assemble.read_policies(settings.policies)
    metrics = Metrics(max_features=settings.max_feature_series, process=True)
    assemble.report_policy_errors(errors, metrics)
    if not loaded:
        raise ReoptdError("no valid policy to run; fix the errors above")
    from reoptd.threads import apply_thread_budget, thread_budget

    # the models' cycles may run at once: the cores are shared between them
    apply_thread_budget(thread_budget(concurrent=len(loaded)), "reoptd run", log)
    registry = assemble.open_registry(settings, metrics, daemon=replay is None)
    try:
        if replay is not None:
            _replay(loaded, replay, registry, metrics, label_delay)
            return
        if speed is None and assemble.is_demo(loaded):
            speed = assemble.DEMO_SPEED
        the_clock = assemble.make_clock(clock, loaded, registry, speed)
        metrics.watch_champions(registry, the_clock)
        # one watcher: the API validates ingested rows against the policies the loops run
        watcher = PolicyWatcher(loaded, metrics)
        # one executor for every model: its slots are the machine's share of runs at once
        runner = open_executor(executor or settings.executor, settings.slots)
        loops = [ModelLoop(p, registry, metrics, watcher=watcher, executor=runner) for p in loaded]
        log.info(
            "reoptd starting: %d model(s) [%s], database %s, executor %s (%d at once),"
            " clock %s at %s",
            len(loops),
            ", ".join(p.model for p in loaded),
            registry.display_url,
            runner.name,
            runner.capacity,
            type(the_clock).__name__ + (f" x{speed:g}" if speed and clock != "system" else ""),
            the_clock.now().isoformat(timespec="seconds"),
        )
        service = Service(
            loops,
            the_clock,
            metrics,
            metrics_host=settings.metrics_host,
            metrics_port=settings.metrics_port if metrics_port is None else metrics_port,
        )
        if not no_api:
            from reoptd.api import ApiServer, create_app

            token = settings.api_token.get_secret_value() if settings.api_token else None
            app = create_app(
                registry,
                watcher,
                the_clock,
                token=token,
                scheduler_running=lambda: service.scheduler.running,
                models_held=lambda: service.owned,
                max_body_bytes=settings.api_max_body_bytes,
                max_rows=settings.api_max_rows,
            )
            host = api_host or settings.api_host
            service.api = ApiServer(app, host, settings.api_port if api_port is None else api_port)
            if token is None:
                log.info("API: mutating routes disabled (set REOPTD_API_TOKEN to enable them)")
        service.run(exit_after)
    finally:  # the MLflow sync's thread stops with the daemon
        assemble.close_registry(registry)


def _replay(loaded, data: Path, registry, metrics, label_delay: str) -> None:
    """``run --replay``: the loops' cycles over a history file, then a one-line summary each."""
    from reoptd.backtest import parse_span, replay_history

    def said(model: str, now, outcome) -> None:
        check = outcome.check
        if check is not None and check.status != "ok":
            logging.getLogger("reoptd.replay").info(
                "%s at %s: check %s: %s", model, f"{now:%Y-%m-%d %H:%M}", check.status, check.reason
            )

    done = replay_history(
        loaded,
        data,
        registry,
        metrics,
        label_delay=parse_span(label_delay, "--label-delay"),
        on_cycle=said,
    )
    for model, cycles in done.cycles.items():
        champion = registry.model(model).champion_version
        typer.echo(
            f"{model}: {cycles} cycles from {done.start:%Y-%m-%d %H:%M} to"
            f" {done.end:%Y-%m-%d %H:%M} UTC, {done.promotions[model]} promotion(s),"
            f" champion v{champion}"
        )
