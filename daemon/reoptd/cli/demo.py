"""``reoptd demo …``: the built-in demo stream."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reoptd.cli._common import (
    demo_app,
)


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

    from reoptd.data import demo

    source = demo.DemoSource(seed=seed, label_delay=timedelta(0))
    frame = source.read(demo.START - timedelta(hours=history), demo.START + timedelta(hours=hours))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    typer.echo(
        f"{out}: {len(frame)} rows from {frame['ts'].iloc[0]:%Y-%m-%d %H:%M} to"
        f" {frame['ts'].iloc[-1]:%Y-%m-%d %H:%M} UTC; drift at {demo.DRIFT_AT:%Y-%m-%d %H:%M}"
    )
