"""Every shipped Grafana dashboard type-checks against Grafana's published schema.

grafana/schema-check pins ``@grafana/schema`` and TypeScript (package-lock.json); ``npm run
check`` writes each dashboard as a TypeScript literal that must satisfy the schema's
``Dashboard`` type and runs ``tsc --noEmit``. npm's cache stays under the worktree (.npm-cache,
ignored by git); ``npm ci`` needs the npm registry, or a cache already filled by
tests/install-servers.sh.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "grafana" / "schema-check"
DASHBOARDS = ROOT / "grafana" / "dashboards"


def _npm(*args: str) -> subprocess.CompletedProcess[str]:
    npm = shutil.which("npm")
    if npm is None:  # a missing tool fails the test: the dashboards would go unchecked
        pytest.fail(
            "npm is not installed: the dashboards cannot be type-checked against Grafana's"
            " schema. Install Node.js 18+ with npm (Debian: apt-get install nodejs npm; "
            "tests/install-servers.sh does it)"
        )
    env = {**os.environ, "npm_config_cache": str(ROOT / ".npm-cache"), "NO_UPDATE_NOTIFIER": "1"}
    return subprocess.run(
        [npm, *args], cwd=CHECK, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def installed() -> None:
    """``npm ci`` once per session: the exact versions of package-lock.json."""
    done = _npm("ci", "--no-audit", "--no-fund")
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout}{done.stderr}"


@pytest.mark.external  # npm, and the npm registry unless the cache holds the packages
def test_every_dashboard_type_checks_against_grafanas_schema(installed: None) -> None:
    done = _npm("run", "check")
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"a dashboard does not match @grafana/schema:\n{output}"
    names = sorted(path.name for path in DASHBOARDS.glob("*.json"))
    assert f"schema-check: {len(names)} dashboards: {', '.join(names)}" in output
    checked = sorted(path.stem for path in (CHECK / "gen").glob("*.ts"))
    assert checked == [Path(name).stem for name in names]


@pytest.mark.external
def test_the_schema_check_rejects_a_dashboard_grafana_would_not_read(
    installed: None, tmp_path: Path
) -> None:
    """The check is not vacuous: a wrong colour mode and an unknown key are reported."""
    board = json.loads((DASHBOARDS / "reoptd-model.json").read_text())
    unknown_key = {**json.loads(json.dumps(board)), "refreshh": "30s"}
    panel = next(p for p in board["panels"] if p["type"] == "stat")
    panel["fieldConfig"]["defaults"]["color"] = {"mode": "rainbow"}
    (tmp_path / "bad-colour.json").write_text(json.dumps(board))
    (tmp_path / "unknown-key.json").write_text(json.dumps(unknown_key))
    try:
        done = _npm("exec", "--", "node", "generate.mjs", str(tmp_path))
        assert done.returncode == 0, done.stdout + done.stderr
        done = _npm("exec", "--", "tsc", "--noEmit")
        output = done.stdout + done.stderr
        assert done.returncode != 0
        assert re.search(r"gen/bad-colour.ts.*'\"rainbow\"' is not assignable", output), output
        assert re.search(r"gen/unknown-key.ts.*'\"refreshh\"' does not exist", output), output
    finally:
        shutil.rmtree(CHECK / "gen", ignore_errors=True)
