"""What a new user reads: `status` and `models` print tables with headers and never `None`;
`check` exits 1, logged at ERROR, when its bootstrap fails; alembic stays quiet."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reoptd.cli import app

POLICIES = Path(__file__).parents[2] / "policies"


def _run(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"REOPTD_HOME": str(home)})
    return result.exit_code, result.output


def _demo_policies(tmp_path: Path, replace: tuple[str, str] | None = None) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    text = (POLICIES / "demo.yaml").read_text()
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    (folder / "demo.yaml").write_text(text)
    return folder


def test_status_and_models_before_anything_ran(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "status")
    assert code == 0 and "no models yet" in out
    code, out = _run(tmp_path, "models", "list")
    assert code == 0 and "no models yet" in out


@pytest.mark.slow
def test_after_a_bootstrap_tables_have_headers_and_no_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policies = _demo_policies(tmp_path)
    with caplog.at_level(logging.DEBUG):
        code, out = _run(tmp_path, "check", "demo_churn", "--policies", str(policies))
    assert code == 0, out
    assert not [r for r in caplog.records if r.name.startswith("alembic") and r.levelno < 30]

    code, out = _run(tmp_path, "status")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == [
        "MODEL", "CHAMPION", "VERSIONS", "LAST", "CHECK", "STATUS", "DRIFT", "DECISION"
    ]  # fmt: skip
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split()[:3] == ["demo_churn", "v1", "1"]
    assert "None" not in out

    code, out = _run(tmp_path, "models", "show", "demo_churn")
    assert code == 0, out
    assert out.splitlines()[0] == "demo_churn (classification): champion v1"
    assert "VERSION  STATUS" in out and "AT  " in out and "REASON" in out
    assert "promote  —     v1" in out  # the first promotion has no predecessor
    assert "None" not in out

    code, out = _run(tmp_path, "models", "list")
    assert code == 0 and out.splitlines()[0].split() == ["MODEL", "TASK", "CHAMPION", "VERSIONS"]


def test_check_exits_1_when_the_bootstrap_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A feature column the data does not have: the bootstrap fails, named, and check says so."""
    policies = _demo_policies(
        tmp_path, ("numerical: [tenure,", "numerical: [tenure, not_a_column,")
    )
    with caplog.at_level(logging.INFO):
        code, out = _run(tmp_path, "check", "demo_churn", "--policies", str(policies))
    assert code == 1, out
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("bootstrap" in m and "failed" in m and "not_a_column" in m for m in errors), errors
    code, out = _run(tmp_path, "status")
    assert "no champion yet" in out and "None" not in out
