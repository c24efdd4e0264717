"""``reoptd models …``: inspect the registry and change champions."""

from __future__ import annotations

from typing import Annotated

import typer

from reoptd import app as assemble
from reoptd.cli._common import (
    _iso,
    _settings,
    _short,
    _table,
    _version,
    models_app,
)


@models_app.command("list")
def models_list() -> None:
    """Every model with its champion version."""
    registry = assemble.open_registry(_settings())
    rows: list[list[object]] = [
        [
            model.name,
            model.task,
            _version(model.champion_version, "no champion yet"),
            len(registry.versions(model.name)),
        ]
        for model in registry.models()
    ]
    if not rows:
        typer.echo("no models yet: start the daemon with `reoptd run`")
        return
    typer.echo(_table(["MODEL", "TASK", "CHAMPION", "VERSIONS"], rows))


@models_app.command("show")
def models_show(model: str) -> None:
    """MODEL's versions (status, trigger, holdout metrics) and its champion history."""
    registry = assemble.open_registry(_settings())
    row = registry.model(model)
    champion = _version(row.champion_version, "no champion yet")
    typer.echo(f"{row.name} ({row.task}): champion {champion}")
    problem = registry.champion_problem(model)
    if problem:
        typer.echo(f"  CHAMPION UNUSABLE: {problem}")
    tunes = {
        r.challenger_version: r.steps["tune"] for r in registry.runs(model) if "tune" in r.steps
    }
    rows: list[list[object]] = []
    details: list[str] = []
    for v in registry.versions(model):
        holdout = v.metrics.get("holdout", {})
        rival = v.metrics.get("champion_on_holdout", {})
        metric = v.metrics.get("metric", "")
        rows.append(
            [
                _version(v.version),
                v.status,
                v.trigger,
                _iso(v.created_at),
                v.train_rows,
                f"{metric} {holdout[metric]:.4f}" if metric in holdout else None,
                f"{rival[metric]:.4f}" if metric in rival else None,
                v.sha256[:12],
            ]
        )
        tune = tunes.get(v.version)
        if tune:
            params = ", ".join(f"{k}={_short(x)}" for k, x in tune["best_params"].items())
            details.append(
                f"  v{v.version} tune: study {tune['study']}, {tune['trials']} trials"
                f" ({tune['pruned']} pruned, {tune['warm_trials']} warm), best"
                f" {tune['best_value']:.4f} at trial {tune['best_trial']}: {params}"
            )
        packed = v.metrics.get("compression")
        if packed and packed.get("methods"):
            details.append(
                f"  v{v.version} compress: {packed['name']}, {packed['size_bytes']} bytes,"
                f" p50 {packed['latency_p50_ms']:.3f} ms at batch {packed['batch_size']}"
            )
    if rows:
        headers = ["VERSION", "STATUS", "TRIGGER", "CREATED", "ROWS", "HOLDOUT", "PARENT", "SHA256"]
        typer.echo("\nversions:")
        typer.echo(_table(headers, rows, indent="  "))
    for detail in details:
        typer.echo(detail)
    events = [
        [_iso(e.at), e.kind, _version(e.from_version), _version(e.to_version), e.reason]
        for e in registry.events(model)
    ]
    if events:
        typer.echo("\nchampion history:")
        typer.echo(_table(["AT", "EVENT", "FROM", "TO", "REASON"], events, indent="  "))


@models_app.command("promote")
def models_promote(model: str, version: int) -> None:
    """Make VERSION of MODEL the champion (one transaction; its artifact is verified first)."""
    registry = assemble.open_registry(_settings())
    event = registry.promote(
        model, version, at=assemble.action_time(registry), reason="manual (CLI)"
    )
    typer.echo(f"{model}: champion {_version(event.from_version)} -> {_version(event.to_version)}")


@models_app.command("rollback")
def models_rollback(model: str) -> None:
    """Return MODEL to the champion before the current one."""
    registry = assemble.open_registry(_settings())
    event = registry.rollback(
        model, at=assemble.action_time(registry), reason="manual rollback (CLI)"
    )
    typer.echo(
        f"{model}: rolled back {_version(event.from_version)} -> {_version(event.to_version)}"
    )


@models_app.command("approve")
def models_approve(
    model: str,
    version: Annotated[
        int | None, typer.Argument(help="Default: the newest version waiting for approval.")
    ] = None,
) -> None:
    """Promote a version that won validation and waits for approval (promote.mode: manual)."""
    registry = assemble.open_registry(_settings())
    event = registry.approve(
        model, version, at=assemble.action_time(registry), reason="approved (CLI)"
    )
    change = f"{_version(event.from_version)} -> {_version(event.to_version)}"
    typer.echo(f"{model}: approved, champion {change}")
