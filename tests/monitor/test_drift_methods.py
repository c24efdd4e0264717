"""Every Evidently drift method is selectable per column, validated by name, and gives Evidently's
own verdicts on the lean path."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest
import yaml
from evidently.legacy.calculations import stattests  # noqa: F401  (registers every test)
from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

from reoptd.errors import PolicyError
from reoptd.monitor import feature_drift, feature_drift_report
from reoptd.plugins import drift_methods_by_kind
from reoptd.policy import Policy, parse_policy
from reoptd.settings import DEMO_POLICY

DRIFT_METHODS = drift_methods_by_kind()

KIND = {"numerical": "num", "categorical": "cat", "text": "text"}


def test_the_method_table_is_evidently_registry() -> None:
    for kind, names in DRIFT_METHODS.items():
        registered = {
            name
            for name, types in _registered_stat_tests.items()
            if KIND[kind] in {t.value for t in types}
        }
        assert set(names) == registered, kind


def _frame(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenure": rng.gamma(2.0, 12.0 + 6 * shift, n).round(),
            "monthly_charges": rng.normal(65 + 12 * shift, 18, n),
            "support_calls": rng.poisson(1.2 + shift, n).astype(float),
            "contract": rng.choice(
                ["m2m", "1y", "2y"], n, p=[0.5 + 0.2 * shift, 0.3, 0.2 - 0.2 * shift]
            ),
            "payment_method": rng.choice(["a", "b"], n, p=[0.5 + 0.3 * shift, 0.5 - 0.3 * shift]),
        }
    )


def _policy(demo: Policy, num: str, cat: str) -> Policy:
    data = yaml.safe_load(DEMO_POLICY.read_text())
    data["monitor"]["drift"] = {"method": num, "cat_method": cat}
    if cat in ("fisher_exact",):  # binary columns only: the other categorical gets chi-square
        data["monitor"]["drift"] = {
            "method": num,
            "cat_method": "chisquare",
            "per_column": {"payment_method": {"method": cat}},
        }
    return parse_policy(yaml.safe_dump(data))


# Each numerical method paired with a categorical one, so every method runs once.
PAIRS = [
    (num, DRIFT_METHODS["categorical"][i % len(DRIFT_METHODS["categorical"])])
    for i, num in enumerate(DRIFT_METHODS["numerical"])
]


@pytest.mark.parametrize(("num", "cat"), PAIRS, ids=[f"{n}+{c}" for n, c in PAIRS])
def test_every_method_gives_evidently_report_verdicts(
    demo_policy: Policy, num: str, cat: str
) -> None:
    policy = _policy(demo_policy, num, cat)
    rng = np.random.default_rng(zlib.crc32(f"{num}/{cat}".encode()))
    # equal sizes: Evidently's fisher_exact and g_test refuse windows of another size
    reference, current = _frame(rng, 300, 0.0), _frame(rng, 300, 0.8)
    lean = feature_drift(policy, reference, current)
    report = feature_drift_report(policy, reference, current)
    assert list(lean) == list(report)
    for column, got in lean.items():
        want = report[column]
        assert got.tested, (column, got.status)
        assert got.drifted == want.drifted, column
        assert got.score == pytest.approx(want.score, rel=1e-9, abs=1e-12), column
        assert got.threshold == pytest.approx(want.threshold), column
    # the shift is large: the classic tests see it on the mean-shifted column
    if num in ("ks", "wasserstein", "mannw", "t_test", "anderson", "ed"):
        assert lean["monthly_charges"].drifted


def _problems(policy_drift: dict, tmp_path) -> list[str]:
    data = yaml.safe_load(DEMO_POLICY.read_text())
    data["monitor"]["drift"] = policy_drift
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyError) as info:
        from reoptd.policy import load_policy

        load_policy(path)
    return info.value.problems


def test_a_misspelt_method_gets_a_did_you_mean(tmp_path) -> None:
    (problem,) = _problems({"method": "wasserstien"}, tmp_path)
    assert "monitor.drift.method" in problem and "did you mean `wasserstein`" in problem


def test_a_method_of_another_column_type_is_refused(tmp_path) -> None:
    (problem,) = _problems({"per_column": {"contract": {"method": "ks"}}}, tmp_path)
    assert "monitor.drift.per_column.contract.method" in problem
    assert "'ks' is a method for numerical columns, not categorical" in problem
    assert "chisquare" in problem  # lists the categorical choices


def test_every_method_name_is_accepted(tmp_path) -> None:
    data = yaml.safe_load(DEMO_POLICY.read_text())
    for num in DRIFT_METHODS["numerical"]:
        for cat in DRIFT_METHODS["categorical"]:
            data["monitor"]["drift"] = {
                "method": num,
                "cat_method": cat,
                "per_column": {"tenure": {"method": num}, "contract": {"method": cat}},
            }
            policy = parse_policy(yaml.safe_dump(data))
            assert policy.monitor.drift.per_column["contract"].method == cat
