"""Reading the Dockerfile the way Docker does, for the tests of deploy/ (tests/deploy/)."""

from __future__ import annotations

import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    if text is None:
        text = DOCKERFILE.read_text()
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    out = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def stages(text: str | None = None) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, its FROM first."""
    out: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            out.append([])
        if out:
            out[-1].append((keyword, rest))
    return out


def runtime(keyword: str) -> list[str]:
    """The arguments of every ``keyword`` instruction of the final (runtime) stage."""
    return [rest for kw, rest in stages()[-1] if kw == keyword]


def runtime_env() -> dict[str, str]:
    """The environment the runtime stage's ENV instructions set (``$PATH`` left as written)."""
    return dict(token.split("=", 1) for rest in runtime("ENV") for token in shlex.split(rest))
