"""Policy files: loading, errors that name file/line/field, units, directories and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from reoptd.errors import PolicyError
from reoptd.policy import (
    Policy,
    format_duration,
    load_policies,
    load_policy,
    parse_duration,
    parse_fraction,
    parse_policy,
)
from reoptd.settings import DEMO_POLICY

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
REOPTD = Path(sys.executable).parent / "reoptd"


def demo_text() -> str:
    return DEMO_POLICY.read_text()


def demo_dict() -> dict[str, Any]:
    return yaml.safe_load(demo_text())


def write(tmp_path: Path, data: dict[str, Any], name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.path == str(path)
    assert info.value.problems, "a PolicyError lists at least one problem"
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# -- good policies ---------------------------------------------------------------------------


def test_demo_policy_loads(demo_policy: Policy) -> None:
    assert demo_policy.model == "demo_churn"
    assert demo_policy.task == "classification"
    assert demo_policy.target == "churned"
    assert demo_policy.features.all == [
        "tenure",
        "monthly_charges",
        "support_calls",
        "contract",
        "payment_method",
    ]
    assert demo_policy.data.production.kind == "demo"
    assert demo_policy.monitor.every == timedelta(minutes=30)
    assert demo_policy.monitor.window == timedelta(hours=2)
    assert [t.kind for t in demo_policy.triggers] == ["drift_share", "metric", "max_age"]
    assert demo_policy.triggers[0].drift_share is not None
    assert demo_policy.triggers[0].drift_share.above == pytest.approx(0.3)
    assert demo_policy.triggers[0].drift_share.for_ == 2
    assert demo_policy.triggers[2].max_age == timedelta(days=7)
    assert demo_policy.guards.cooldown == timedelta(hours=1)
    assert demo_policy.guards.max_runs_per_day == 12
    assert demo_policy.promote.holdout == pytest.approx(0.25)
    assert demo_policy.metric == "f1"
    assert demo_policy.source == DEMO_POLICY


def test_every_shipped_policy_loads() -> None:
    files = sorted([*POLICIES.glob("*.yaml"), *POLICIES.glob("*.yml")])
    assert files, "policies/ holds at least one policy"
    for file in files:
        policy = load_policy(file)
        assert policy.source == file
        assert policy.model
    policies, errors = load_policies(POLICIES)
    assert errors == []
    assert len(policies) == len(files)


def test_parse_policy_from_text() -> None:
    policy = parse_policy(demo_text(), "inline.yaml")
    assert policy.model == "demo_churn"
    assert policy.source == Path("inline.yaml")


# -- errors name file, line and field --------------------------------------------------------


def test_unknown_key_names_file_line_field_and_suggestion(tmp_path: Path) -> None:
    text = demo_text()
    assert text.count("  cooldown: 1h\n") == 1
    broken = text.replace("  cooldown: 1h\n", "  coldown: 1h\n")
    lines = broken.splitlines()
    line = next(i for i, row in enumerate(lines, start=1) if row.strip().startswith("coldown:"))
    path = tmp_path / "typo.yaml"
    path.write_text(broken)

    problems = problems_of(path)

    assert len(problems) == 1
    message = problems[0]
    assert message.startswith(f"{path}:{line}: ")
    assert "guards.coldown" in message
    assert "did you mean `cooldown`?" in message


def test_unknown_key_without_close_match_lists_allowed_keys(tmp_path: Path) -> None:
    data = demo_dict()
    data["guards"]["zzzz"] = 1
    (message,) = problems_of(write(tmp_path, data))
    assert "guards.zzzz" in message
    assert "unknown key `zzzz`" in message
    assert "cooldown" in message and "max_runs_per_day" in message


def test_unknown_key_under_aliased_field_suggests_alias(tmp_path: Path) -> None:
    data = demo_dict()
    data["triggers"][0]["drift_share"] = {"above": 0.3, "fo": 2}
    (message,) = problems_of(write(tmp_path, data))
    assert "triggers.0.drift_share.fo" in message
    assert "did you mean `for`?" in message


def test_wrong_type_names_field(tmp_path: Path) -> None:
    data = demo_dict()
    data["monitor"] = {"min_rows": "many"}
    path = write(tmp_path, data)
    (message,) = problems_of(path)
    assert message.startswith(f"{path}:")
    assert "monitor.min_rows" in message
    assert "'many'" in message


def test_wrong_type_reports_correct_line(tmp_path: Path) -> None:
    broken = demo_text().replace("  min_rows: 100\n", "  min_rows: many\n")
    line = broken.splitlines().index("  min_rows: many") + 1
    path = tmp_path / "type.yaml"
    path.write_text(broken)
    (message,) = problems_of(path)
    assert message.startswith(f"{path}:{line}: monitor.min_rows: ")


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    data = demo_dict()
    del data["target"]
    path = write(tmp_path, data)
    (message,) = problems_of(path)
    assert message.startswith(f"{path}")
    assert "target" in message
    assert "required field is missing" in message


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    data = demo_dict()
    del data["target"]
    data["guards"]["coldown"] = "1h"
    problems = problems_of(write(tmp_path, data))
    assert len(problems) == 2
    joined = "\n".join(problems)
    assert "target" in joined
    assert "guards.coldown" in joined


def test_invalid_yaml_gives_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nmodel: m\n  task: classification\n")
    (message,) = problems_of(path)
    assert message.startswith(f"{path}:3: ")
    assert "not valid YAML" in message


def test_yaml_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- version: 1\n")
    (message,) = problems_of(path)
    assert message.startswith(f"{path}:1: ")
    assert "mapping" in message


def test_unreadable_file_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    (message,) = problems_of(path)
    assert str(path) in message
    assert "cannot read" in message


def test_trigger_with_two_keys_is_rejected(tmp_path: Path) -> None:
    data = demo_dict()
    data["triggers"][0] = {"drift_share": {"above": 0.3}, "max_age": "7d"}
    (message,) = problems_of(write(tmp_path, data))
    assert "triggers.0" in message
    assert "exactly one of" in message


def test_empty_trigger_is_rejected(tmp_path: Path) -> None:
    data = demo_dict()
    data["triggers"].append({})
    (message,) = problems_of(write(tmp_path, data))
    assert "triggers.3" in message
    assert "exactly one of" in message


@pytest.mark.parametrize("key", ["max_age", "drift_share", "metric"])
def test_trigger_key_without_a_value_is_rejected(tmp_path: Path, key: str) -> None:
    data = demo_dict()
    data["triggers"].append({key: None})
    (message,) = problems_of(write(tmp_path, data))
    assert "triggers.3" in message and "exactly one of" in message


def test_a_dumped_policy_validates_again(demo_policy: Policy) -> None:
    dumped = demo_policy.model_dump(mode="json", by_alias=True)
    again = Policy.model_validate(dumped)
    assert again.model_dump(mode="json", by_alias=True) == dumped
    assert [t.kind for t in again.triggers] == ["drift_share", "metric", "max_age"]


@pytest.mark.parametrize("every", [".inf", "1.0e+20"])
def test_an_absurd_duration_is_a_policy_error_not_a_crash(tmp_path: Path, every: str) -> None:
    text = demo_text().replace("every: 30m", f"every: {every}")
    path = tmp_path / "huge.yaml"
    path.write_text(text)
    (message,) = problems_of(path)
    assert "monitor.every" in message and "finite" in message


def test_a_broken_percentage_gets_the_friendly_message(tmp_path: Path) -> None:
    data = demo_dict()
    data["promote"]["holdout"] = "abc%"
    (message,) = problems_of(write(tmp_path, data))
    assert "promote.holdout" in message and "expected a fraction like 0.2 or 20%" in message
    assert message.count("abc%") == 1


def test_metric_trigger_needs_exactly_one_bound(tmp_path: Path) -> None:
    data = demo_dict()
    data["triggers"][1] = {"metric": {"name": "f1", "below": 0.4, "above": 0.9}}
    (message,) = problems_of(write(tmp_path, data))
    assert "triggers.1.metric" in message
    assert "exactly one of `below`, `above` or `drop`" in message


def test_unknown_metric_for_the_task_is_rejected(tmp_path: Path) -> None:
    data = demo_dict()
    data["triggers"][1]["metric"]["name"] = "rmse"  # a regression metric on a classifier
    (message,) = problems_of(write(tmp_path, data))
    assert "triggers.1.metric.name" in message
    assert "unknown classification metric 'rmse'" in message
    assert "f1" in message


def test_unknown_promote_metric_is_rejected(tmp_path: Path) -> None:
    data = demo_dict()
    data["promote"]["metric"] = "precision_at_10"  # precision itself is built in now
    (message,) = problems_of(write(tmp_path, data))
    assert "promote.metric" in message
    assert "'precision_at_10'" in message


def test_bad_duration_in_policy_names_field(tmp_path: Path) -> None:
    data = demo_dict()
    data["monitor"]["every"] = "soon"
    (message,) = problems_of(write(tmp_path, data))
    assert "monitor.every" in message
    assert "expected a duration" in message


def test_bad_fraction_in_policy_names_field(tmp_path: Path) -> None:
    data = demo_dict()
    data["promote"]["holdout"] = "150%"
    (message,) = problems_of(write(tmp_path, data))
    assert "promote.holdout" in message
    assert "between 0 and 1" in message


def test_files_source_needs_a_path(tmp_path: Path) -> None:
    data = demo_dict()
    data["data"]["production"] = {"kind": "files"}
    (message,) = problems_of(write(tmp_path, data))
    assert "data.production" in message
    assert "needs a `path`" in message


def test_feature_listed_twice_and_target_as_feature(tmp_path: Path) -> None:
    data = demo_dict()
    data["features"]["categorical"] = ["contract", "tenure", "churned"]
    (message,) = problems_of(write(tmp_path, data))
    assert "listed twice: tenure" in message
    assert "'churned' is the target, timestamp or id column" in message


# -- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("6h", timedelta(hours=6)),
        ("30d", timedelta(days=30)),
        ("1w", timedelta(weeks=1)),
        ("45s", timedelta(seconds=45)),
        ("1.5h", timedelta(minutes=90)),
        (" 2d ", timedelta(days=2)),
        (90, timedelta(seconds=90)),
        (0, timedelta(0)),
        (2.5, timedelta(seconds=2.5)),
        (timedelta(hours=3), timedelta(hours=3)),
    ],
)
def test_parse_duration(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "bad", ["soon", "15", "m", "15 minutes", "15M", "1y", "-5m", "", None, True, -1, -0.5]
)
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(minutes=15), "15m"),
        (timedelta(hours=6), "6h"),
        (timedelta(days=7), "1w"),
        (timedelta(minutes=90), "90m"),
        (timedelta(seconds=45), "45s"),
        (timedelta(0), "0s"),
    ],
)
def test_format_duration_round_trips(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text
    assert parse_duration(text) == delta


@pytest.mark.parametrize(
    ("value", "expected"),
    [("20%", 0.2), (" 25% ", 0.25), ("0%", 0.0), ("100%", 1.0), (0.2, 0.2), (0, 0.0), (1, 1.0)],
)
def test_parse_fraction(value: object, expected: float) -> None:
    assert parse_fraction(value) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [1.5, -0.1, "120%", "-5%", 2])
def test_parse_fraction_out_of_range(bad: object) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_fraction(bad)


@pytest.mark.parametrize("bad", ["0.2", "twenty", None, True, [0.2]])
def test_parse_fraction_rejects_non_fractions(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a fraction"):
        parse_fraction(bad)


# -- directories -----------------------------------------------------------------------------


def test_load_policies_returns_good_beside_errors(tmp_path: Path) -> None:
    good = tmp_path / "a_good.yaml"
    good.write_text(demo_text())
    bad_data = demo_dict()
    bad_data["model"] = "other"
    bad_data["guards"]["coldown"] = "1h"
    bad = write(tmp_path, bad_data, "b_bad.yml")
    (tmp_path / "notes.txt").write_text("not a policy")

    policies, errors = load_policies(tmp_path)

    assert [p.model for p in policies] == ["demo_churn"]
    assert policies[0].source == good
    assert len(errors) == 1
    assert errors[0].path == str(bad)
    assert str(bad) in str(errors[0])
    assert "guards.coldown" in str(errors[0])


def test_load_policies_reports_duplicate_model(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    second = tmp_path / "b.yaml"
    first.write_text(demo_text())
    second.write_text(demo_text())

    policies, errors = load_policies(tmp_path)

    assert [p.source for p in policies] == [first]
    assert len(errors) == 1
    assert errors[0].path == str(second)
    message = str(errors[0])
    assert "'demo_churn'" in message
    assert "already defined" in message
    assert str(first) in message


def test_load_policies_of_empty_directory(tmp_path: Path) -> None:
    assert load_policies(tmp_path) == ([], [])


# -- CLI -------------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REOPTD), *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_cli_validate_demo_policy(tmp_path: Path) -> None:
    result = run_cli("policy", "validate", str(DEMO_POLICY), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok (model demo_churn)" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_validate_broken_policy(tmp_path: Path) -> None:
    data = demo_dict()
    data["monitor"]["min_rows"] = "many"
    path = write(tmp_path, data, "broken.yaml")
    result = run_cli("policy", "validate", str(DEMO_POLICY), str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert "monitor.min_rows" in result.stderr
    assert str(path) in result.stderr
    assert "ok (model demo_churn)" in result.stdout  # the good file is still reported
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_policy_schema_is_json(tmp_path: Path) -> None:
    result = run_cli("policy", "schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert "triggers" in schema["properties"]
    assert "model" in schema["required"]
    assert "Traceback" not in result.stdout + result.stderr
