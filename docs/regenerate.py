"""Regenerate the README's sample outputs from real runs, so they stay true: `make readme-samples`.

Each sample is the fenced block between ``<!-- sample: NAME -->`` and ``<!-- /sample -->`` in
README.md. This script runs the commands the block shows (``$ reoptd ...`` lines) in a fresh
temporary directory and home, with one BLAS/OpenMP thread (``OMP_NUM_THREADS=1``: on a shared
machine more threads fight for the cores), and writes their output back into the block.

    python docs/regenerate.py              # every sample
    python docs/regenerate.py backtest     # only these
    python docs/regenerate.py --list       # the samples and their commands

``tests/test_readme_examples.py`` runs the same commands (the README's examples as written).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: what the README's commands are prefixed with (a `make` install's virtualenv)
SHOWN_PREFIX = ".venv/bin/"
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
BLOCK = re.compile(
    r"(?P<head><!-- sample: (?P<name>[a-z0-9-]+) -->\n```[a-z]*\n)(?P<body>.*?)(?P<tail>```\n"
    r"<!-- /sample -->)",
    re.S,
)


@dataclass
class Sample:
    """Commands run in order in one directory; ``show`` turns their outputs into the block."""

    name: str
    commands: list[str]
    show: Callable[[list[str], list[str]], str] = field(default=lambda c, o: _transcript(c, o))
    timeout: float = 900


PROGRESS = re.compile(r"\d+%\|")  # a progress bar's line
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<level>[A-Z]+) +(?P<name>[\w.]+): (?P<message>.*)$")


def _transcript(commands: list[str], outputs: list[str]) -> str:
    """``$ command`` then what it printed, for each command; of its log, only warnings, errors
    and how a re-optimization ended (without the wall-clock time)."""
    lines: list[str] = []
    for command, output in zip(commands, outputs, strict=True):
        lines.append(f"$ {SHOWN_PREFIX}{_wrapped(command)}")
        for line in output.strip("\n").splitlines():
            log = LOG_LINE.match(line)
            if log is None:
                if not PROGRESS.search(line):
                    lines.append(line.rstrip())
            elif log["level"] in ("WARNING", "ERROR") or (
                log["name"] == "reoptd.loop"
                and log["message"].split(": ")[1:2] != ["check v"]
                and "re-optimization" in log["message"]
                and "started" not in log["message"]
            ):
                lines.append(f"{log['level']:7} {log['name']}: {log['message']}")
    return "\n".join(lines).strip("\n") + "\n"


def _wrapped(command: str, width: int = 96) -> str:
    """A long command broken before its options, as a shell reads it."""
    if len(command) + len(SHOWN_PREFIX) + 2 <= width:
        return command
    words = shlex.split(command)
    lines, line = [], ""
    for word in words:
        piece = word if not line else f"{line} {word}"
        if line and word.startswith("--") and len(piece) + 8 > width:
            lines.append(line)
            line = "      " + word
        else:
            line = piece
    return " \\\n".join([*lines, line])


def _daemon_run(commands: list[str], outputs: list[str]) -> str:
    """The demo daemon's log, quiet: its promotions, the decisions that led to them and the
    check lines just before each decision; the wall-clock time of each line left out."""
    lines = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in outputs[-1].splitlines()]
    lines = [line for line in lines if line.startswith(("INFO", "WARNING", "ERROR"))]
    keep = set()
    for i, line in enumerate(lines):
        if "re-optimization promoted" in line or "decision RE-OPTIMIZE" in line:
            keep.add(i)
            if "decision RE-OPTIMIZE" in line:  # and the check it decided on
                checks = [j for j in range(i) if "check v" in lines[j]]
                keep.update(checks[-1:])
        elif line.startswith(("WARNING", "ERROR")):
            keep.add(i)
    first_check = next((i for i, line in enumerate(lines) if "check v" in line), None)
    if first_check is not None:
        keep.add(first_check)
    shown: list[str] = []
    previous = None
    for i in sorted(keep):
        if previous is not None and i != previous + 1:
            shown.append("...")
        shown.append(lines[i])
        previous = i
    return "\n".join(shown) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SAMPLES = {
    s.name: s
    for s in [
        Sample(
            "demo-run",
            ["reoptd run --exit-after 150 --no-api --metrics-port {port}"],
            show=_daemon_run,
        ),
        Sample(
            "backtest",
            [
                "reoptd demo export demo.parquet",
                "reoptd backtest --policy {root}/policies/demo.yaml --data demo.parquet"
                " --warmup 3h --step 15m --label-delay 30m --report backtest.json"
                " --plot backtest.png",
            ],
        ),
        Sample(
            "torch",
            [
                "reoptd demo export demo-day.parquet --hours 24",
                "reoptd optimize --policy {root}/policies/torch-mlp.yaml --data demo-day.parquet"
                " --steps retrain",
                "reoptd optimize --policy {root}/policies/torch-mlp.yaml --data demo-day.parquet"
                " --steps compress --report compress.json",
                "reoptd models show churn_mlp",
            ],
        ),
    ]
}


def run_sample(sample: Sample, workdir: Path) -> list[str]:
    """Run ``sample``'s commands in ``workdir`` (its own REOPTD_HOME); their outputs. A command
    that fails raises ``RuntimeError`` with its output."""
    env = {**os.environ, **THREADS, "REOPTD_HOME": str(workdir / "home")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(ROOT / "daemon"), env.get("PYTHONPATH", "")] if p
    )
    outputs = []
    for command in sample.commands:
        args = shlex.split(command.format(root=ROOT, port=_free_port()))
        done = subprocess.run(
            [sys.executable, "-m", "reoptd.cli", *args[1:]],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=sample.timeout,
        )
        output = done.stdout + done.stderr
        if done.returncode != 0:
            raise RuntimeError(f"{command}: exit {done.returncode}\n{output}")
        outputs.append(output)
    return outputs


def shown_commands(sample: Sample) -> list[str]:
    """The commands as the README shows them (paths relative to the repository)."""
    return [
        c.format(root=".", port=9464).replace("./policies", "policies") for c in sample.commands
    ]


def rewrite(readme: str, name: str, body: str) -> str:
    """``readme`` with the block of sample ``name`` replaced by ``body``."""
    found = False

    def swap(match: re.Match[str]) -> str:
        nonlocal found
        if match["name"] != name:
            return match[0]
        found = True
        return match["head"] + body + match["tail"]

    text = BLOCK.sub(swap, readme)
    if not found:
        raise KeyError(f"README.md has no <!-- sample: {name} --> block")
    return text


def main(argv: list[str]) -> int:
    if "--list" in argv:
        for sample in SAMPLES.values():
            print(sample.name, *shown_commands(sample), sep="\n  ")
        return 0
    names = argv or list(SAMPLES)
    for name in names:
        sample = SAMPLES[name]
        with tempfile.TemporaryDirectory(prefix=f"reoptd-{name}-") as tmp:
            print(f"{name}: running {len(sample.commands)} command(s) in {tmp}", flush=True)
            outputs = run_sample(sample, Path(tmp))
        body = sample.show(shown_commands(sample), outputs)
        README.write_text(rewrite(README.read_text(), name, body))
        print(f"{name}: README.md updated", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
