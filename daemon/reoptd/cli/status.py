"""``reoptd status``: models, champions, last checks."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from reoptd import app as assemble
from reoptd.cli._common import (
    NONE,
    _iso,
    _settings,
    _table,
    _version,
    app,
)
from reoptd.signals import Signals


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Models, champion versions, last checks and decisions.

    --json prints {"models": [{"name", "champion_version", "versions" (count),
    "champion_problem" (why the champion's artifacts do not load, or null), "last_check"
    (ISO time), "last_check_status", "drift_share", "last_decision" {"at", "fire", "triggers",
    "reasons"}, "metrics" and "estimated" (the last check's measured and label-free metrics),
    "estimation" (the last check's bands: {"confidence", "lower", "upper", "reliable",
    "reason"}, or null), "last_realised" (the newest window whose labels are in, estimate beside
    realised value: {"window_end", "estimated", "realised", "error"}, or null), "last_backfill"
    {"at", "window_end", "labelled_rows_before", "labelled_rows", "metrics"}}]}.
    """
    registry = assemble.open_registry(_settings())
    entries: list[dict[str, Any]] = []
    for model in registry.models():
        checks = registry.checks(model.name, limit=1)
        decision = registry.last_decision(model.name)
        last = checks[-1] if checks else None
        entries.append(
            {
                "name": model.name,
                "champion_version": model.champion_version,
                "versions": len(registry.versions(model.name)),
                "champion_problem": registry.champion_problem(model.name),
                "last_check": _iso(last.at) if last else None,
                "last_check_status": last.status if last else None,
                "drift_share": last.drift_share if last else None,
                "metrics": dict(last.metrics) if last else {},
                "estimated": dict(Signals.from_json(last.signals).estimated) if last else {},
                "estimation": _band(last),
                "last_realised": _last_realised(registry, model.name),
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
    rows = []
    for e in entries:
        decision = e["last_decision"]
        rows.append(
            [
                e["name"],
                _version(e["champion_version"], "no champion yet"),
                e["versions"],
                _when(e["last_check"]),
                e["last_check_status"],
                None if e["drift_share"] is None else f"{e['drift_share']:.2f}",
                None if decision is None else ("re-optimize" if decision["fire"] else "hold"),
            ]
        )
    headers = ["MODEL", "CHAMPION", "VERSIONS", "LAST CHECK", "STATUS", "DRIFT", "DECISION"]
    typer.echo(_table(headers, rows))
    for e in entries:
        details = []
        if e["champion_problem"]:
            details.append(f"CHAMPION UNUSABLE: {e['champion_problem']}")
        band = e["estimation"]
        if e["estimated"]:
            shown = ", ".join(f"{k} {v:.3f}{_range(band, k)}" for k, v in e["estimated"].items())
            level = f" ({band['confidence']:.0%} bands)" if band and band["confidence"] else ""
            details.append(f"estimated without labels{level}: {shown}")
        if band and not band["reliable"]:
            details.append(f"estimate {band['reason']}")
        if e["last_realised"]:
            r = e["last_realised"]
            shown = ", ".join(
                f"{k} {r['realised'][k]:.3f} (estimated {v:.3f}, error {r['error'][k]:+.3f})"
                for k, v in r["estimated"].items()
            )
            details.append(f"realised, window ending {_when(r['window_end'])}: {shown}")
        if e["last_backfill"]:
            b = e["last_backfill"]
            shown = ", ".join(f"{k} {v:.3f}" for k, v in b["metrics"].items())
            details.append(
                f"last backfill {_when(b['at'])}: window ending {_when(b['window_end'])}"
                f" re-scored with {b['labelled_rows']} labels (had {b['labelled_rows_before']}):"
                f" {shown}"
            )
        if e["last_decision"]:
            d = e["last_decision"]
            verdict = "re-optimize" if d["fire"] else "hold"
            details.append(f"last decision {_when(d['at'])}: {verdict} — {d['reasons']}")
        if details:
            typer.echo(f"\n{e['name']}:")
            for detail in details:
                typer.echo(f"  {detail}")


def _when(iso: str | None) -> str:
    """An ISO time as ``2026-01-02 04:00:00+00:00``; never ``None``."""
    return NONE if iso is None else iso.replace("T", " ")


def _last_backfill(registry, name: str) -> dict | None:
    """The most recently re-scored past window among the model's recent checks."""
    done = []
    for c in registry.checks(name, limit=200):
        record = Signals.from_json(c.signals).backfill
        if record is not None and record.metrics is not None and record.at is not None:
            done.append((c, record, record.at))
    if not done:
        return None
    check, record, at = max(done, key=lambda entry: entry[2])
    return {
        "at": at.isoformat(),
        "window_end": _iso(check.window_end),
        "labelled_rows_before": record.labelled_rows_before,
        "labelled_rows": record.labelled_rows,
        "metrics": record.metrics,
    }


def _band(check) -> dict | None:
    """The last check's estimation: its bands and whether it is reliable."""
    estimation = Signals.from_json(check.signals).estimation if check else None
    if estimation is None:
        return None
    return {
        "confidence": estimation.confidence,
        "lower": estimation.lower or {},
        "upper": estimation.upper or {},
        "reliable": estimation.reliable,
        "reason": estimation.reason,
    }


def _range(band: dict | None, metric: str) -> str:
    if not band or metric not in band["lower"] or metric not in band["upper"]:
        return ""
    return f" [{band['lower'][metric]:.3f}, {band['upper'][metric]:.3f}]"


def _last_realised(registry, name: str) -> dict | None:
    """The newest window among the model's recent checks whose estimate has a realised value."""
    for c in reversed(registry.checks(name, limit=200)):
        signals = Signals.from_json(c.signals)
        estimation = signals.estimation
        if estimation is None or not estimation.realised:
            continue
        errors = estimation.errors(signals.estimated)
        return {
            "window_end": _iso(c.window_end),
            "estimated": {k: signals.estimated[k] for k in errors},
            "realised": {k: estimation.realised[k] for k in errors},
            "error": errors,
        }
    return None
