"""``reoptd policy …``: validate, explain and describe policy files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from reoptd import app as assemble
from reoptd.cli._common import (
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
