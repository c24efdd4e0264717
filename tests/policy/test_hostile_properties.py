"""Chaos suite (issue #14): hypothesis-generated hostile policy files, through ``load_policy`` and
``reoptd policy validate``. Zero tracebacks; every refusal names the file, and the field when
the problem is inside the YAML."""

from __future__ import annotations

import json
import os
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from reoptd.cli import app
from reoptd.errors import PolicyError
from reoptd.policy import Policy, load_policy
from reoptd.settings import DEMO_POLICY

DEMO = DEMO_POLICY.read_text()
ESTIMATOR = "estimator: sklearn.ensemble.HistGradientBoostingClassifier"
PARAMS = "params: {max_iter: 150, learning_rate: 0.05, max_depth: 3, random_state: 0}"
#: a small size limit for the "too large" case, so the test writes kilobytes, not megabytes
SMALL_LIMIT = 4096

CHAOS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

DANGEROUS = st.sampled_from(
    [
        "subprocess.Popen",
        "io.FileIO",
        "collections.OrderedDict",
        "os.system",
        "builtins.exec",
        "shutil.rmtree",
        "pickle.loads",
        "sklearn",
        "sklearn.utils.Bunch",
        "sklearn.preprocessing.StandardScaler",
        "sklearn.base.BaseEstimator",
        "sklearn..ensemble",
        "",
    ]
)
DOTTED = st.lists(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=4
).map(".".join)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)


@st.composite
def hostile_files(draw: st.DrawFn) -> tuple[str, bytes, str | None]:
    """(case, the file's bytes, the field its refusal must name, if any)."""
    case = draw(
        st.sampled_from(
            [
                "bytes",
                "encoding",
                "splice",
                "deep",
                "bomb",
                "huge",
                "estimator",
                "params",
            ]
        )
    )
    if case == "bytes":
        return case, draw(st.binary(max_size=2000)), None
    if case == "encoding":
        encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"]))
        text = DEMO.replace("model: demo_churn", "model: démo_" + draw(st.text("éàü€", min_size=1)))
        try:
            return case, text.encode(encoding), None
        except UnicodeEncodeError:
            return case, text.encode("utf-16"), None
    if case == "splice":
        raw = DEMO.encode()
        at = draw(st.integers(0, len(raw)))
        return case, raw[:at] + draw(st.binary(min_size=1, max_size=50)) + raw[at:], None
    if case == "deep":
        depth = draw(st.integers(65, 20_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
        nested = opener * depth + closer * depth
        return case, DEMO.replace(PARAMS, f"params: {{x: {nested}}}").encode(), "train.params.x"
    if case == "bomb":
        fan = draw(st.integers(9, 20))
        levels = draw(st.integers(6, 10))
        lines = ["params:", "    l0: &l0 [" + ", ".join(["lol"] * fan) + "]"]
        for level in range(1, levels):
            refs = ", ".join([f"*l{level - 1}"] * fan)
            lines.append(f"    l{level}: &l{level} [{refs}]")
        return case, DEMO.replace(PARAMS, "\n".join(lines)).encode(), "train.params"
    if case == "huge":
        size = draw(st.integers(SMALL_LIMIT + 1, 4 * SMALL_LIMIT))
        raw = DEMO.encode() + b"#" * size
        return case, raw, None
    if case == "estimator":
        estimator = draw(st.one_of(DANGEROUS, DOTTED))
        params = json.dumps(draw(st.dictionaries(st.text(max_size=10), SCALARS, max_size=3)))
        text = DEMO.replace(ESTIMATOR, f"estimator: {json.dumps(estimator)}")
        return case, text.replace(PARAMS, f"params: {params}").encode(), "train.estimator"
    keys = st.one_of(st.sampled_from(["max_iter", "max_iters", "loss", "__class__"]), st.text())
    params = json.dumps(draw(st.dictionaries(keys, SCALARS, min_size=1, max_size=4)))
    return case, DEMO.replace(PARAMS, f"params: {params}").encode(), "train.params"


@pytest.mark.slow
@CHAOS
@given(hostile_files())
def test_hostile_policy_files_are_refused_with_no_traceback(
    tmp_path: Path, hostile: tuple[str, bytes, str | None]
) -> None:
    case, raw, field = hostile
    path = tmp_path / "hostile.yaml"
    path.write_bytes(raw)
    limit = {"REOPTD_POLICY_MAX_BYTES": str(SMALL_LIMIT)} if case == "huge" else {}
    with mock.patch.dict(os.environ, limit):
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            assert exc.problems and all(p.startswith(f"{path}") for p in exc.problems), exc
            if field is not None and not any("not valid YAML" in p for p in exc.problems):
                assert any(f": {field}" in p for p in exc.problems), exc
            refused = True
        else:
            assert isinstance(policy, Policy)
            assert case not in ("bytes", "deep", "bomb", "huge", "estimator"), raw[:200]
            refused = False
        result = CliRunner().invoke(app, ["policy", "validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert result.exit_code == (1 if refused else 0), result.output
    assert str(path) in result.output
