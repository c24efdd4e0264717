"""The ``reoptd`` command line (typer), one module per command group. Every command prints a
clear error, never a traceback."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from reoptd.cli._common import app
from reoptd.errors import ReoptdError

__all__ = ["app", "main"]

# Each command group registers itself on ``app`` when imported; this order is the order of
# ``reoptd --help``.
for _group in ("run", "optimize", "backtest", "status", "models", "policy", "demo"):
    importlib.import_module(f"reoptd.cli.{_group}")


def main(argv: list[str] | None = None) -> Any:
    try:
        return app(args=argv)
    except ReoptdError as exc:  # StoreUnavailable too: the database failed, named, no traceback
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
