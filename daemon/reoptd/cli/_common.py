"""The typer applications, shared options and helpers of every command group."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

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

ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="Where re-optimization runs execute: local (worker processes beside the daemon,"
        " $REOPTD_SLOTS at once) or inline (default: $REOPTD_EXECUTOR, else local).",
        show_default=False,
    ),
]


def _settings(policies: Path | None = None) -> Settings:
    settings = Settings()
    if policies is not None:
        settings.policies = policies
    return settings


class LogFormat(StrEnum):
    text = "text"
    json = "json"


LogFormatOpt = Annotated[
    LogFormat,
    typer.Option(
        help="text: one readable line per record; json: one JSON object per line (time, level,"
        " name, message, and exc_info for errors), for log shippers.",
    ),
]


def _logging(verbose: bool = False, log_format: LogFormat = LogFormat.text) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if log_format is LogFormat.json:
        from pythonjsonlogger.json import JsonFormatter

        handler = logging.StreamHandler()
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
        logging.basicConfig(level=level, handlers=[handler], force=True)
    else:
        logging.basicConfig(
            level=level,
            format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
        )
    # alembic logs its plugin setup and migration context at INFO on every command
    for noisy in ("alembic", "apscheduler", "evidently", "httpx", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


#: what a table cell shows for a value that does not exist (yet)
NONE = "—"


def _table(headers: list[str], rows: Sequence[Sequence[object]], indent: str = "") -> str:
    """A plain-text table: a header row, a rule, one line per row, columns left-aligned; a
    missing value (``None``) shows as an em dash."""
    cells = [[NONE if c is None else str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return indent + "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    rule = ["-" * w for w in widths]
    return "\n".join([line(headers), line(rule), *(line(row) for row in cells)])


def _version(number: int | None, missing: str = NONE) -> str:
    return missing if number is None else f"v{number}"


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")
