"""``reoptd models …``: inspect the registry and change champions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from reoptd import app as assemble
from reoptd.cli._common import (
    ClockOpt,
    PoliciesOpt,
    _iso,
    _settings,
    _short,
    _table,
    _version,
    models_app,
)
from reoptd.errors import ReoptdError
from reoptd.store import RunRecord

#: how long `adopt` waits for the daemon's cycle or run of the model (seconds)
ADOPT_WAIT = 30.0


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
        serving = _serving_line(v.version, packed)
        if serving:
            details.append(serving)
    if rows:
        headers = ["VERSION", "STATUS", "TRIGGER", "CREATED", "ROWS", "HOLDOUT", "PARENT", "SHA256"]
        typer.echo("\nversions:")
        typer.echo(_table(headers, rows, indent="  "))
    for detail in details:
        typer.echo(detail)
    for line in _training_details(registry.runs(model)):  # warm start and augmentation
        typer.echo(line)
    events = [
        [_iso(e.at), e.kind, _version(e.from_version), _version(e.to_version), e.reason]
        for e in registry.events(model)
    ]
    if events:
        typer.echo("\nchampion history:")
        typer.echo(_table(["AT", "EVENT", "FROM", "TO", "REASON"], events, indent="  "))


def _training_details(runs: list[RunRecord]) -> list[str]:
    """Per version a run trained: whether it was warm-started from the champion (the final fit's
    choice: tune's when the pipeline tunes) and which augmentation it kept."""
    lines = []
    for run in sorted(runs, key=lambda r: r.challenger_version or 0):
        steps = run.steps
        fit = steps.get("tune", {}).get("final_fit") or steps.get("retrain")
        if run.challenger_version is None or not fit or "chosen" not in fit:
            continue
        label = f"  v{run.challenger_version}"
        candidates = fit.get("candidates", {})
        timing = "; ".join(
            f"{name} {c['seconds']:.1f}s"
            + "".join(f", {k} {v:.4f}" for k, v in c.items() if k != "seconds")
            for name, c in candidates.items()
        )
        how = (
            "warm-started from the champion" if fit["chosen"] == "warm" else "trained from scratch"
        )
        why = f" (no warm start: {fit['warm_refused']})" if fit.get("warm_refused") else ""
        lines.append(f"{label} train: {how}, warm_start {fit['warm_start']}; {timing}{why}")
        augment = steps.get("augment")
        if augment:
            kept = augment["chosen"]
            tried = ", ".join(augment.get("tried", [])) or "nothing"
            verdict = f"kept {kept}" if kept != "none" else "not augmented"
            lines.append(f"{label} augment: {verdict} (tried {tried}): {augment['reason']}")
    return lines


def _serving_line(version: int, packed: dict[str, Any] | None) -> str | None:
    """``vN serving: onnx ...`` for a version the compress step chose a serving form for."""
    if not packed or "serving" not in packed:
        return None
    if packed["serving"] != "onnx":
        return f"  v{version} serving: {packed['serving']} (the family's own form)"
    return (
        f"  v{version} serving: onnx (ONNX Runtime, loads without running code), outputs within"
        f" {packed.get('max_difference') or 0:.2g} of the python form on the holdout"
    )


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


@models_app.command("adopt")
def models_adopt(
    model: Annotated[str, typer.Argument(help="Model name (the policy's `model:`).")],
    artifact: Annotated[
        str,
        typer.Option(
            help="The model to adopt: a pickle or joblib file of a fitted scikit-learn estimator"
            " or pipeline, or an MLflow model URI, models:/NAME@ALIAS or models:/NAME/VERSION"
            " (read from $REOPTD_MLFLOW_URI; an sklearn flavour model). Needs --trust.",
            show_default=False,
        ),
    ],
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Reference rows (CSV or Parquet with the policy's features and timestamp; with"
            " its target too, they also give the holdout metrics).",
            show_default=False,
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            help="Instead of --reference: the policy's own source over this duration up to"
            " now, e.g. 7d.",
            show_default=False,
        ),
    ] = None,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="Confirm that you trust the model: loading a pickle runs the code it names.",
        ),
    ] = False,
    policies: PoliciesOpt = None,
    policy_file: Annotated[
        Path | None,
        typer.Option("--policy", help="A policy file, instead of MODEL from --policies."),
    ] = None,
    clock: ClockOpt = "auto",
) -> None:
    """Adopt a model already in production: check it against MODEL's policy, register it as the
    next version (version 1 for a new model) with its reference rows, and make it champion. The
    daemon then monitors it and challenges it with versions it trains."""
    from reoptd import adopt
    from reoptd.data import open_source, parse_timestamps, read_table
    from reoptd.policy import load_policy, parse_duration

    settings = _settings(policies)
    policy = (
        load_policy(policy_file) if policy_file else assemble.find_policy(settings.policies, model)
    )
    if policy.model != model:
        raise ReoptdError(f"{policy_file}: is the policy of {policy.model!r}, not of {model!r}")
    if (reference is None) == (window is None):
        raise ReoptdError("give the reference rows: --reference FILE or --window DURATION")
    if not trust:
        raise ReoptdError(
            f"{artifact}: loading a pickled model runs the code it names; adopt only a model"
            " you trust, and say so with --trust"
        )
    if artifact.startswith("models:/"):
        if not settings.mlflow_uri:
            raise ReoptdError(f"{artifact}: set REOPTD_MLFLOW_URI to the MLflow server to read it")
        found = adopt.read_mlflow(artifact, settings.mlflow_uri)
    else:
        found = adopt.read_file(Path(artifact))
    registry = assemble.open_registry(settings)
    now = assemble.make_clock(clock, [policy], registry).now()
    if reference is not None:
        rows = read_table(reference)
        if policy.timestamp in rows.columns:
            rows[policy.timestamp] = parse_timestamps(rows, policy.timestamp, str(reference))
        where = str(reference)
    else:
        assert window is not None
        try:
            span = parse_duration(window)
        except ValueError as exc:
            raise ReoptdError(f"--window {window}: {exc}") from None
        rows = open_source(policy, registry).read(now - span, now)
        where = f"{policy.data.production.kind} source, {window} up to {_iso(now)}"
    with registry.model_lock(policy.model, wait=ADOPT_WAIT):  # not beside the daemon's cycle
        version = adopt.adopt(registry, policy, found, rows, at=now, reference_source=where)
    holdout = version.metrics.get("holdout", {})
    metric = policy.metric
    score = f", holdout {metric} {holdout[metric]:.4f}" if metric in holdout else ""
    typer.echo(
        f"{model}: adopted {found.source} as {_version(version.version)} (champion);"
        f" reference {version.train_rows} rows from {where}"
        f" ({version.metrics.get('holdout_rows', 0)} labelled{score})"
    )
