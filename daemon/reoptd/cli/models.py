"""``reoptd models …``: inspect the registry and change champions."""

from __future__ import annotations

from typing import Annotated

import typer

from reoptd import app as assemble
from reoptd.cli._common import (
    _iso,
    _settings,
    _short,
    models_app,
)


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
    problem = registry.champion_problem(model)
    if problem:
        typer.echo(f"  CHAMPION UNUSABLE: {problem}")
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
    registry = assemble.open_registry(_settings())
    event = registry.promote(
        model, version, at=assemble.action_time(registry), reason="manual (CLI)"
    )
    typer.echo(f"{model}: champion v{event.from_version} -> v{event.to_version}")


@models_app.command("rollback")
def models_rollback(model: str) -> None:
    """Return MODEL to the champion before the current one."""
    registry = assemble.open_registry(_settings())
    event = registry.rollback(
        model, at=assemble.action_time(registry), reason="manual rollback (CLI)"
    )
    typer.echo(f"{model}: rolled back v{event.from_version} -> v{event.to_version}")


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
    typer.echo(f"{model}: approved, champion v{event.from_version} -> v{event.to_version}")
