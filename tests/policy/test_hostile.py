"""Hostile policy files (issue #14): a policy cannot run code, bombs are refused fast, and one bad
file stops nothing: not ``reoptd run``, not a running model whose file is edited badly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reoptd import app as assemble
from reoptd.cli import app
from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.errors import OptimizeError, PolicyError
from reoptd.metrics import Metrics
from reoptd.models import build_model
from reoptd.policy import load_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import Store

DEMO = DEMO_POLICY.read_text()
ESTIMATOR = "estimator: sklearn.ensemble.HistGradientBoostingClassifier"
PARAMS = "params: {max_iter: 150, learning_rate: 0.05, max_depth: 3, random_state: 0}"

#: the "billion laughs": under 1 KB, 9**7 values once expanded
ALIAS_BOMB = """\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


def policy_text(model: str = "demo_churn", estimator: str | None = None, params: str = "") -> str:
    """The demo policy, renamed, with another estimator and/or ``params:`` block."""
    text = DEMO.replace("model: demo_churn", f"model: {model}")
    if estimator is not None:
        text = text.replace(ESTIMATOR, f"estimator: {estimator}")
    if params:
        text = text.replace(PARAMS, params)
    return text


def refusal(path: Path) -> str:
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.path == str(path)
    message = str(caught.value)
    assert all(p.startswith(str(path)) for p in caught.value.problems), message
    assert "Traceback" not in message
    return message


def validate(*files: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["policy", "validate", *map(str, files)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


# -- a policy is data, not code -----------------------------------------------------------------


def test_popen_is_refused_by_validate_and_nothing_is_executed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.yaml"
    path.write_text(policy_text("evil", "subprocess.Popen", "params: {args: [touch, pwned]}"))

    message = refusal(path)
    assert f"{path}:37: train.estimator: 'subprocess.Popen' is not in a module" in message
    assert "REOPTD_ALLOWED_ESTIMATOR_MODULES" in message
    code, output = validate(path)
    assert code == 1 and "train.estimator" in output and "ok" not in output

    # a policy that skipped validation cannot run it either: the family checks again at build
    policy = load_policy(DEMO_POLICY)
    hostile = policy.model_copy(
        update={
            "train": policy.train.model_copy(
                update={"estimator": "subprocess.Popen", "params": {"args": ["touch", "pwned"]}}
            )
        }
    )
    with pytest.raises(OptimizeError, match=r"train\.estimator: 'subprocess\.Popen' is not"):
        build_model(hostile)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("estimator", "params", "why"),
    [
        ("io.FileIO", "params: {file: victim.txt, mode: w}", "is not in a module"),
        ("collections.OrderedDict", "params: {}", "is not in a module"),
        ("os.system", "params: {}", "is not in a module"),
        ("builtins.eval", "params: {}", "is not in a module"),
        ("sklearn", "params: {}", "is not an import path"),
        ("sklearn.ensemble.NoSuchForest", "params: {}", "cannot import"),
        ("sklearn.utils.Bunch", "params: {}", "is not a scikit-learn estimator"),
        ("sklearn.preprocessing.StandardScaler", "params: {}", "does not predict"),
        ("'sklearn.ensemble.__init__.os.system'", "params: {}", "cannot import"),
    ],
)
def test_a_class_that_is_no_allowed_estimator_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, estimator: str, params: str, why: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "victim.txt").write_text("precious")
    path = tmp_path / "bad.yaml"
    path.write_text(policy_text("bad", estimator, params))
    message = refusal(path)
    assert f"{path}:37: train.estimator: " in message and why in message
    assert (tmp_path / "victim.txt").read_text() == "precious"


def test_the_operator_sets_the_allowlist_and_nothing_off_it_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reoptd_evil_module.py").write_text(
        "import pathlib\npathlib.Path('imported').write_text('x')\nclass Thing: ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "p.yaml"
    path.write_text(policy_text("p", "reoptd_evil_module.Thing"))
    assert "is not in a module the operator allows" in refusal(path)
    assert "reoptd_evil_module" not in sys.modules and not (tmp_path / "imported").exists()

    monkeypatch.setenv("REOPTD_ALLOWED_ESTIMATOR_MODULES", "sklearn.linear_model., other.")
    path.write_text(policy_text("p"))  # HistGradientBoosting: sklearn.ensemble, now refused
    assert "sklearn.linear_model., other." in refusal(path)
    path.write_text(policy_text("p", "sklearn.linear_model.LogisticRegression", "params: {C: 0.5}"))
    assert load_policy(path).train.estimator == "sklearn.linear_model.LogisticRegression"


def test_unknown_parameters_are_refused_with_a_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(policy_text(params="params:\n    max_iters: 10\n    learning_rat: 0.1"))
    message = refusal(path)
    assert f"{path}:39: train.params.max_iters: HistGradientBoostingClassifier has no" in message
    assert "did you mean `max_iter`?" in message
    assert f"{path}:40: train.params.learning_rat:" in message
    assert "did you mean `learning_rate`?" in message


# -- YAML limits ---------------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_naming_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(policy_text(params="params:\n" + ALIAS_BOMB))
    assert len(ALIAS_BOMB) < 1024
    message = refusal(path)
    assert "train.params." in message and "aliases are expanded" in message
    code, output = validate(path)
    assert code == 1 and str(path) in output


def test_an_alias_to_its_own_node_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(policy_text(params="params: &p {a: *p}"))
    assert "refers to a node containing it" in refusal(path)


def test_a_20000_deep_list_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(policy_text(params="params: {x: " + "[" * 20_000 + "]" * 20_000 + "}"))
    message = refusal(path)
    assert "train.params.x" in message and "nested more than 64 levels deep" in message


def test_a_50_mb_policy_is_refused_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as file:
        file.write(policy_text().encode())
        file.truncate(50 * 1024 * 1024)  # sparse: the size is what matters
    message = refusal(path)
    assert "52,428,800 bytes, over the limit of 1,048,576" in message
    assert "REOPTD_POLICY_MAX_BYTES" in message
    monkeypatch.setenv("REOPTD_POLICY_MAX_BYTES", "1000")
    path.write_text(policy_text())
    assert "over the limit of 1,000" in refusal(path)


@pytest.mark.parametrize(
    ("encoding", "why"),
    [
        ("latin-1", "not UTF-8 (byte 0xe9"),
        ("utf-16", "UTF-16/32 text; save it as UTF-8"),
        ("binary", "not UTF-8"),
    ],
)
def test_a_file_that_is_not_utf8_is_refused_naming_it(
    tmp_path: Path, encoding: str, why: str
) -> None:
    path = tmp_path / "enc.yaml"
    path.write_bytes(_encoded(encoding))
    assert why in refusal(path)


def _encoded(encoding: str) -> bytes:
    if encoding == "binary":
        return bytes(range(256)) * 4
    return policy_text("café").encode(encoding)


def test_values_python_cannot_build_and_non_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "date.yaml"
    path.write_text(policy_text(params="params: {when: 2020-13-45}"))
    assert "train.params.when: value cannot be read: month must be in 1..12" in refusal(path)
    path.write_text(policy_text(params="params: {n: " + "9" * 5000 + "}"))
    assert "train.params.n: value cannot be read" in refusal(path)
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    assert "not a regular file" in refusal(folder)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert "not a regular file" in refusal(fifo)  # and it does not block on the open


# -- one bad file stops nothing ------------------------------------------------------------------


def test_bad_files_beside_a_good_one_are_reported_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "demo.yaml").write_text(DEMO)
    for encoding in ("latin-1", "utf-16", "binary"):
        (tmp_path / f"{encoding}.yaml").write_bytes(_encoded(encoding))
    (tmp_path / "bomb.yaml").write_text(policy_text("bomb", params="params:\n" + ALIAS_BOMB))
    (tmp_path / "deep.yaml").write_text("x: " + "[" * 20_000 + "]" * 20_000)
    (tmp_path / "evil.yaml").write_text(policy_text("evil", "collections.OrderedDict"))
    os.mkfifo(tmp_path / "fifo.yaml")

    policies, errors = assemble.read_policies(tmp_path)
    assert [p.model for p in policies] == ["demo_churn"]
    names = sorted(Path(e.path).name for e in errors)
    bad = ["binary", "bomb", "deep", "evil", "fifo", "latin-1", "utf-16"]
    assert names == [f"{n}.yaml" for n in bad]
    assert {e.model for e in errors} == {None, "evil"}

    metrics = Metrics()
    assemble.report_policy_errors(errors, metrics)
    sample = metrics.registry.get_sample_value
    assert sample("reoptd_policy_file_errors_total") == len(bad)
    assert sample("reoptd_policy_valid", {"model": "evil"}) == 0


@pytest.mark.parametrize(
    "bad",
    [
        "latin-1",
        "utf-16",
        "binary",
        "bomb",
        "deep",
        "popen",
        "ordered_dict",
        "unknown_param",
    ],
)
def test_a_bad_edit_to_a_running_policy_keeps_the_last_valid_one(
    tmp_path: Path,
    sqlite_registry: Store,
    clock: SimulatedClock,
    metrics: Metrics,
    bad: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "demo.yaml"
    path.write_text(DEMO)
    loop = ModelLoop(load_policy(path), sqlite_registry, metrics)
    loop.start()
    loop.cycle(clock.now())
    valid = lambda: metrics.registry.get_sample_value(  # noqa: E731
        "reoptd_policy_valid", {"model": "demo_churn"}
    )
    assert valid() == 1
    edits: dict[str, bytes] = {
        "latin-1": DEMO.replace("model: demo_churn", "model: demo_churn  # café").encode("latin-1"),
        "utf-16": DEMO.encode("utf-16"),
        "binary": _encoded("binary"),
        "bomb": policy_text(params="params:\n" + ALIAS_BOMB).encode(),
        "deep": policy_text(params="params: {x: " + "[" * 20_000 + "]" * 20_000 + "}").encode(),
        "popen": policy_text(
            estimator="subprocess.Popen", params="params: {args: [touch, pwned]}"
        ).encode(),
        "ordered_dict": policy_text(estimator="collections.OrderedDict").encode(),
        "unknown_param": policy_text(params="params: {max_iters: 3}").encode(),
    }
    path.write_bytes(edits[bad])
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000))
    assert loop.reload_if_changed() is False
    assert valid() == 0
    assert loop.policy.train.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    clock.advance(timedelta(minutes=30))
    assert loop.cycle(clock.now()).check.status == "ok"  # and the model keeps being checked
    assert not (tmp_path / "pwned").exists()


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.slow
def test_the_daemon_runs_the_good_model_beside_hostile_files(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "demo.yaml").write_text(DEMO)
    for encoding in ("latin-1", "utf-16", "binary"):
        (policies / f"{encoding}.yaml").write_bytes(_encoded(encoding))
    (policies / "bomb.yaml").write_text(policy_text("bomb", params="params:\n" + ALIAS_BOMB))
    (policies / "deep.yaml").write_text("x: " + "[" * 20_000 + "]" * 20_000)
    (policies / "evil.yaml").write_text(
        policy_text("evil", "subprocess.Popen", "params: {args: [touch, pwned]}")
    )
    with (policies / "huge.yaml").open("wb") as file:
        file.truncate(50 * 1024 * 1024)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "REOPTD_HOME": str(tmp_path / "home")}
    command = [str(Path(sys.executable).parent / "reoptd"), "run", "--policies", str(policies)]
    options = ["--clock", "simulated", "--speed", "2000", "--metrics-port", str(port), "--no-api"]
    proc = subprocess.Popen(
        [*command, *options, "--exit-after", "120"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        scraped: dict = {}
        deadline = time.monotonic() + 90
        ok = ("reoptd_checks_total", (("model", "demo_churn"), ("outcome", "ok")))
        while time.monotonic() < deadline and proc.poll() is None and not scraped.get(ok):
            time.sleep(1)
            scraped = _scrape(port)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    for bad in ("latin-1", "utf-16", "binary", "bomb", "deep", "evil", "huge"):
        assert f"skipping policy {policies / bad}.yaml" in output, output
    assert scraped.get(ok, 0) >= 1, output
    assert scraped[("reoptd_policy_file_errors_total", ())] == 7
    assert scraped[("reoptd_policy_valid", (("model", "evil"),))] == 0
    assert scraped[("reoptd_policy_valid", (("model", "demo_churn"),))] == 1
    assert not (tmp_path / "pwned").exists()


def test_tune_space_names_only_the_estimators_parameters(tmp_path: Path) -> None:
    path = tmp_path / "tune.yaml"
    path.write_text(
        policy_text().replace(
            "pipeline: [retrain, validate]",
            "pipeline: [retrain, tune, validate]\ntune:\n  space:\n"
            "    max_iter: {int: [10, 100]}\n    max_dept: {int: [2, 5]}",
        )
    )
    message = refusal(path)
    assert "tune.space.max_dept: HistGradientBoostingClassifier has no parameter" in message
    assert "did you mean `max_depth`?" in message


def test_an_allowed_third_party_estimator_is_checked_by_its_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reoptd_test_estimators.py").write_text(
        "from sklearn.ensemble import RandomForestClassifier\n"
        "class Strict(RandomForestClassifier):\n"
        "    def __init__(self, *, extra=1, **kwargs):\n"
        "        super().__init__(**kwargs)\n"
        "        self.extra = extra\n"
        "from sklearn.base import BaseEstimator, ClassifierMixin\n"
        "class Loose(ClassifierMixin, BaseEstimator):\n"
        "    def __init__(self, **kwargs):\n"
        "        self.kwargs = kwargs\n"
        "    def fit(self, X, y): return self\n"
        "    def predict(self, X): return X\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("REOPTD_ALLOWED_ESTIMATOR_MODULES", "sklearn.,reoptd_test_estimators.")
    path = tmp_path / "p.yaml"
    strict = "reoptd_test_estimators.Strict"
    path.write_text(policy_text("p", strict, "params: {extra: 2, n_estimators: 5}"))
    assert load_policy(path).train.params == {"extra": 2, "n_estimators": 5}
    path.write_text(policy_text("p", strict, "params: {n_estimator: 5}"))
    assert "did you mean `n_estimators`?" in refusal(path)
    # **kwargs all the way down: any name may be meant, the estimator checks it when built
    path.write_text(policy_text("p", "reoptd_test_estimators.Loose", "params: {anything: 5}"))
    assert load_policy(path).train.params == {"anything": 5}
