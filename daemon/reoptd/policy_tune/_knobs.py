"""The policy's tunable knobs: what an Optuna trial may change in the base policy file.

A candidate is the base policy's own YAML mapping with a few values replaced, so the file
``--out`` writes keeps the user's structure (data sources, pipeline, promotion rules) untouched
and validates with ``reoptd policy validate``. The knobs:

- each of the base's triggers: on or off, and its thresholds (``above``, ``below``, ``drop``,
  ``at_least``, the ``max_age`` duration) and ``for``;
- a ``max_age`` trigger when the base has none (off by default in the search);
- ``monitor.drift``'s per-feature ``threshold`` and ``cat_threshold`` (when the base sets them),
  which decide what a drift trigger counts as drifted, asked only when one is on;
- ``guards.cooldown``, ``train.window`` and ``promote.min_improvement``.

The first trials are the base policy and a few variants of it (``seeds``), so the search starts
from what the user wrote and from its most responsive form, not only from random points.

Durations are searched in checks (multiples of ``monitor.every``): the backtest steps by it,
so a finer grain could not change what a policy does.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Protocol

import yaml

from reoptd.policy import Policy, format_duration, parse_duration, parse_policy

FOR_RANGE = (1, 6)  # consecutive checks a trigger must hold
COOLDOWN_CHECKS = 4  # guards.cooldown: 0 .. max(this, base * SPREAD) checks
WINDOW_FACTOR = (0.25, 4.0)  # train.window, relative to the base's
MAX_AGE_CHECKS = (2, 240)  # a max_age trigger added when the base has none
SPREAD = 4.0  # other positive values: base / SPREAD .. base * SPREAD


class Suggest(Protocol):
    """What a knob asks of an Optuna trial (``optuna.Trial`` is one)."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def raw_triggers(raw: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The base file's trigger entries and how they combine (``{all: [...]}`` or a list)."""
    triggers = raw.get("triggers") or []
    combine = str(raw.get("combine", "any"))
    if isinstance(triggers, dict) and len(triggers) == 1:
        ((combine, triggers),) = triggers.items()
    return [dict(t) for t in triggers], combine


def candidate(
    base: Policy, raw: dict[str, Any], trial: Suggest, min_window: float = 0.0
) -> dict[str, Any]:
    """The base's YAML mapping with every knob set by ``trial`` (define-by-run: a trigger's
    thresholds are asked for only when the trial turns it on). ``min_window``: the shortest
    ``train.window`` (seconds) worth trying, one that can hold ``train.min_rows`` labelled
    rows; the search never goes below a quarter of the base's, nor must go above it."""
    every = base.monitor.every.total_seconds()
    out = copy.deepcopy(raw)
    entries, combine = raw_triggers(raw)
    chosen: list[dict[str, Any]] = []
    for index, (entry, parsed) in enumerate(zip(entries, base.triggers, strict=True)):
        kind = parsed.kind
        if not trial.suggest_categorical(f"t{index}_{kind}", [True, False]):
            continue
        chosen.append({kind: _trigger(trial, f"t{index}", kind, entry[kind], parsed, every)})
    has_max_age = any(t.kind == "max_age" for t in base.triggers)
    if not has_max_age and trial.suggest_categorical("add_max_age", [False, True]):
        checks = trial.suggest_int("add_max_age_checks", *MAX_AGE_CHECKS, log=True)
        chosen.append({"max_age": _checks(checks, every)})
    out["triggers"] = chosen
    out["combine"] = combine
    if any(kind in DRIFT_COUNTED for entry in chosen for kind in entry):
        _drift_thresholds(trial, base, out)
    guards = dict(out.get("guards") or {})
    cooldown = trial.suggest_int("cooldown_checks", 0, _cooldown_high(base))
    guards["cooldown"] = _checks(cooldown, every)
    out["guards"] = guards
    train = dict(out["train"])
    factor = trial.suggest_float(
        "window_factor", shortest_factor(base, min_window), WINDOW_FACTOR[1], log=True
    )
    window = max(every, round(base.train.window.total_seconds() * factor / every) * every)
    train["window"] = _checks(window / every, every)
    out["train"] = train
    promote = dict(out.get("promote") or {})
    high = max(0.05, SPREAD * base.promote.min_improvement)
    promote["min_improvement"] = round(trial.suggest_float("min_improvement", 0.0, high), 4)
    out["promote"] = promote
    return out


DRIFT_COUNTED = ("drift_share", "drift_features")  # triggers monitor.drift's thresholds decide
DRIFT_THRESHOLDS = ("threshold", "cat_threshold")


def _drift_thresholds(trial: Suggest, base: Policy, out: dict[str, Any]) -> None:
    """``monitor.drift.threshold`` / ``cat_threshold`` from base / SPREAD to base * SPREAD,
    each only when the base sets it (unset, Evidently picks one per method)."""
    monitor = dict(out.get("monitor") or {})
    drift = dict(monitor.get("drift") or {})
    for key in DRIFT_THRESHOLDS:
        value = getattr(base.monitor.drift, key)
        if value:
            low, high = value / SPREAD, value * SPREAD
            drift[key] = round(trial.suggest_float(f"drift_{key}", low, high, log=True), 4)
    monitor["drift"] = drift
    out["monitor"] = monitor


def _cooldown_high(base: Policy) -> int:
    every = base.monitor.every.total_seconds()
    checks = base.guards.cooldown.total_seconds() / every
    return max(COOLDOWN_CHECKS, math.ceil(checks * SPREAD))


def shortest_factor(base: Policy, min_window: float) -> float:
    """The smallest ``window_factor`` searched: ``min_window`` seconds relative to the base's
    window, at least ``WINDOW_FACTOR[0]`` and at most 1 (the base's own window is searched)."""
    return min(1.0, max(WINDOW_FACTOR[0], min_window / base.train.window.total_seconds()))


def seeds(base: Policy, min_window: float = 0.0) -> list[tuple[str, dict[str, Any]]]:
    """The first trials, each a name and its parameters: the base policy as written, then its
    triggers on the shortest training window the search allows (a model of the newest rows),
    then that without a cooldown, then that with every trigger firing on its first check. All
    are derived from the base policy alone (nothing about the data), so that a drift trigger
    that reacts fast with a short window, which random sampling rarely draws all at once, is on
    the front from the start and the sampler refines around it."""
    params = base_params(base)
    short = {**params, "window_factor": shortest_factor(base, min_window)}
    eager = {**short, "cooldown_checks": 0}
    first = {k: (1 if k.endswith("_for") else v) for k, v in eager.items()}
    out = [("base", params), ("short window", short), ("no cooldown", eager)]
    out.append(("first check", first))
    unique: list[tuple[str, dict[str, Any]]] = []
    for name, item in out:
        if all(item != other for _, other in unique):
            unique.append((name, item))
    return unique


def base_params(base: Policy) -> dict[str, Any]:
    """The trial parameters that reproduce the base policy (enqueued as the first trial), as
    far as the grid of checks allows."""
    every = base.monitor.every.total_seconds()
    params: dict[str, Any] = {}
    for index, parsed in enumerate(base.triggers):
        kind, name = parsed.kind, f"t{index}"
        params[f"{name}_{kind}"] = True
        spec = getattr(parsed, kind)
        if kind in ("drift_share", "multivariate_drift"):
            params[f"{name}_above"] = spec.above
        if kind == "metric":
            bound = next(b for b in ("below", "above", "drop") if getattr(spec, b) is not None)
            params[f"{name}_{bound}"] = getattr(spec, bound)
        if kind == "estimated_metric":
            params[f"{name}_below"] = spec.below
        if kind == "new_rows":
            params[f"{name}_at_least"] = spec.at_least
        if kind == "max_age":
            params[f"{name}_checks"] = max(1, round(spec.total_seconds() / every))
        if hasattr(spec, "for_"):
            params[f"{name}_for"] = spec.for_
    if not any(t.kind == "max_age" for t in base.triggers):
        params["add_max_age"] = False
    if any(t.kind in DRIFT_COUNTED for t in base.triggers):
        for key in DRIFT_THRESHOLDS:
            value = getattr(base.monitor.drift, key)
            if value:
                params[f"drift_{key}"] = value
    params["cooldown_checks"] = min(
        _cooldown_high(base), round(base.guards.cooldown.total_seconds() / every)
    )
    params["window_factor"] = 1.0
    params["min_improvement"] = base.promote.min_improvement
    return params


def _trigger(trial: Suggest, name: str, kind: str, written: Any, parsed: Any, every: float) -> Any:
    spec = getattr(parsed, kind)
    if kind == "max_age":
        base = max(1, round(spec.total_seconds() / every))
        low, high = max(1, math.floor(base / SPREAD)), max(2, math.ceil(base * SPREAD))
        return _checks(trial.suggest_int(f"{name}_checks", low, high, log=True), every)
    if kind == "schedule":
        return written  # a cron line: on or off only
    entry = dict(written or {})
    if kind == "drift_share":
        entry["above"] = round(trial.suggest_float(f"{name}_above", 0.05, 0.9), 3)
    if kind == "multivariate_drift":
        entry["above"] = round(trial.suggest_float(f"{name}_above", 0.51, 0.95), 3)
    if kind in ("metric", "estimated_metric"):
        for bound in ("below", "above"):
            value = getattr(spec, bound, None)
            if value is not None:
                low, high = sorted((value * 0.8, value * 1.2)) if value else (-0.1, 0.1)
                entry[bound] = round(trial.suggest_float(f"{name}_{bound}", low, high), 4)
        drop = getattr(spec, "drop", None)
        if drop is not None:
            low, high = drop / SPREAD, drop * SPREAD
            entry["drop"] = round(trial.suggest_float(f"{name}_drop", low, high, log=True), 4)
    if kind == "new_rows":
        low, high = max(1, spec.at_least // 4), max(2, spec.at_least * 4)
        entry["at_least"] = trial.suggest_int(f"{name}_at_least", low, high, log=True)
    if hasattr(spec, "for_"):
        entry["for"] = trial.suggest_int(f"{name}_for", *FOR_RANGE)
    return entry


def _checks(checks: float, every: float) -> str:
    return format_duration(parse_duration(round(checks) * every))


def to_yaml(raw: dict[str, Any]) -> str:
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def parse_candidate(text: str, where: str) -> Policy:
    """A candidate's YAML as the daemon would load it (raises ``PolicyError`` when invalid)."""
    return parse_policy(text, where)


def describe(policy: Policy) -> str:
    """One line of what a candidate does: its triggers and guards."""
    parts = [_trigger_text(t) for t in policy.triggers] or ["no trigger (never retrains)"]
    joined = (" and " if policy.combine == "all" else " or ").join(parts)
    drift = policy.monitor.drift
    if any(t.kind in DRIFT_COUNTED for t in policy.triggers):  # the thresholds it counts with
        pairs = ((drift.method, drift.threshold), (drift.cat_method, drift.cat_threshold))
        limits = [f"{method or 'default'}>{value:g}" for method, value in pairs if value]
        joined += f"; feature drift {', '.join(limits)}" if limits else ""
    return (
        f"{joined}; cooldown {format_duration(policy.guards.cooldown)}; window"
        f" {format_duration(policy.train.window)}; min_improvement"
        f" {policy.promote.min_improvement:g}"
    )


def _trigger_text(trigger: Any) -> str:
    kind = trigger.kind
    spec = getattr(trigger, kind)
    hold = f" x{spec.for_}" if getattr(spec, "for_", 1) > 1 else ""
    if kind in ("drift_share", "multivariate_drift"):
        return f"{kind}>{spec.above:g}{hold}"
    if kind in ("metric", "estimated_metric"):
        name = spec.name or "metric"
        if getattr(spec, "drop", None) is not None:
            return f"{name} drop>{spec.drop:g}{hold}"
        if spec.below is not None:
            return f"{name}<{spec.below:g}{hold}"
        return f"{name}>{spec.above:g}{hold}"
    if kind == "new_rows":
        return f"new_rows>={spec.at_least}"
    if kind == "max_age":
        return f"max_age {format_duration(spec)}"
    if kind == "schedule":
        return f"schedule {spec!r}"
    return f"{kind}{hold}"
