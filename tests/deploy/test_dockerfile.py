"""The Dockerfile: hadolint finds nothing, its install steps are the Makefile's, and it keeps the
promises deploy/README.md makes (non-root, state on a volume, health check, entrypoint, labels).

No image is built here: building needs the network (PyPI and PyTorch's CPU index). What the
build runs is the Makefile's $(STAMP) commands, which a fresh clone's `make test` runs.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _deploy import DOCKERFILE, instructions, runtime_env, stages

from reoptd.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    """A console script of the venv running the tests (or on PATH); a clear failure if absent."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: a dev dependency (make test installs them)")
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(
        f"Dockerfile:{f['line']}: {f['code']} {f['message']}" for f in findings
    )
    assert result.returncode == 0, result.stderr


def test_hadolint_really_lints() -> None:
    """The check above is not vacuous: the same call flags an unpinned base and pip install."""
    bad = "FROM python\nRUN pip install requests\n"
    result = subprocess.run(
        [_tool("hadolint"), "--format", "json", "-"],
        input=bad,
        capture_output=True,
        text=True,
        check=False,
    )
    codes = {f["code"] for f in json.loads(result.stdout)}
    assert {"DL3006", "DL3013"} <= codes
    assert result.returncode != 0


def _makefile_install_commands() -> list[str]:
    """The pip commands of the Makefile's $(STAMP) recipe, the venv's python written `python`."""
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert recipe is not None, "Makefile: no $(STAMP) target"
    commands = []
    for line in recipe.group(1).splitlines():
        line = line.strip().lstrip("@")
        if " pip install" in line:
            commands.append(line.replace("$(VENV)/bin/python", "python"))
    return commands


def _dockerfile_install_commands() -> list[str]:
    commands = []
    for keyword, rest in stages()[0]:
        if keyword != "RUN":
            continue
        for part in rest.split("&&"):
            part = part.strip()
            if " pip install" in part:
                commands.append(part.replace('"$VENV/bin/python"', "python"))
    return commands


def test_install_steps_are_the_makefiles() -> None:
    """The same pip commands in the same order; the only difference allowed is that the image
    installs the package itself (`.`) where the Makefile's venv installs it editable (`-e .`)."""
    makefile = [c.replace(" -e .", " .") for c in _makefile_install_commands()]
    assert len(makefile) == 3, makefile
    assert _dockerfile_install_commands() == makefile


def test_runtime_stage_keeps_its_promises() -> None:
    built = stages()
    assert len(built) >= 2, "a multi-stage build: the runtime stage has no build tree"
    build, runtime = built[0], built[-1]
    args = dict(
        rest.split("=", 1) for keyword, rest in instructions() if keyword == "ARG" and "=" in rest
    )
    assert args.get("PYTHON_IMAGE", "").startswith("python:3.11-slim"), args
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE}")
    by = {}
    for keyword, rest in runtime:
        by.setdefault(keyword, []).append(rest)

    user = by["USER"][-1]
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0", user  # numeric, not root

    env = runtime_env()
    home = env["REOPTD_HOME"]
    assert json.loads(by["VOLUME"][-1]) == [home]
    assert env["REOPTD_API_HOST"] == env["REOPTD_METRICS_HOST"] == "0.0.0.0"

    defaults = Settings()
    ports = {int(p) for e in by["EXPOSE"] for p in e.split()}
    assert ports == {defaults.api_port, defaults.metrics_port}

    healthcheck = by["HEALTHCHECK"][-1]
    assert "/healthz" in healthcheck and str(defaults.api_port) in healthcheck

    assert json.loads(by["ENTRYPOINT"][-1]) == ["reoptd"]
    assert json.loads(by["CMD"][-1]) == ["run"]

    labels = " ".join(by["LABEL"])
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last matching rule wins)."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            ignored = not negate
    return ignored


def test_build_context_holds_what_copy_needs() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for keyword, rest in instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            sources += rest.split()[:-1]
    assert sources, "no COPY from the context"
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _ignored(source, patterns), f".dockerignore drops {source}"
    assert _ignored("tests/conftest.py", patterns)  # the rest stays out of the context
    assert _ignored(".venv/bin/python", patterns)
