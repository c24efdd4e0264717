"""`reoptd policy schema` accepts exactly what `reoptd policy validate` accepts: every shipped
policy and every generated valid policy validate against it, and policies broken in a way a
JSON Schema can see (an unknown key, a wrong type, a missing field, two trigger kinds in one
rule, a bad duration or fraction) fail it as they fail the loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from reoptd.cli import app
from reoptd.errors import PolicyError
from reoptd.policy import Policy, parse_policy

from .test_policy_properties import SETTINGS, broken_policies, valid_policies

POLICIES = sorted((Path(__file__).parents[2] / "policies").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> Any:
    """The schema as the CLI prints it, for an editor's YAML plugin."""
    result = CliRunner().invoke(app, ["policy", "schema"])
    assert result.exit_code == 0, result.output
    return jsonschema_rs.validator_for(json.loads(result.output))


def _errors(validator: Any, data: Any) -> list[str]:
    return [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(data)]


def test_the_schema_is_the_models() -> None:
    assert Policy.model_json_schema(by_alias=True)["title"] == "Policy"


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_every_shipped_policy_validates_against_the_schema(validator: Any, path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    parse_policy(path.read_text(), name=path.name)  # and the loader accepts it
    assert _errors(validator, data) == []


def test_short_forms_validate() -> None:
    schema = jsonschema_rs.validator_for(Policy.model_json_schema(by_alias=True))
    base = yaml.safe_load(POLICIES[0].read_text())
    rule = {"drift_share": {"above": 0.3, "for": 2}}
    forms: list[dict[str, Any]] = [
        {"triggers": {"all": [rule]}},
        {"triggers": {"any": [rule, {"max_age": "30d"}]}},
        {"triggers": [rule, {"max_age": "30d", "schedule": None}]},
        {"pipeline": ["retrain", {"validate": None}]},
        {"pipeline": [{"retrain": "10m"}, {"validate": {"budget": "5m"}}]},
        {"pipeline": [{"name": "retrain", "budget": 30}, "validate"]},
    ]
    for form in forms:
        data = {**base, **form}
        parse_policy(yaml.safe_dump(data), name="form.yaml")
        assert schema.is_valid(data), (form, _errors(schema, data))


def test_invalid_short_forms_fail_both() -> None:
    schema = jsonschema_rs.validator_for(Policy.model_json_schema(by_alias=True))
    base = yaml.safe_load(POLICIES[0].read_text())
    rule = {"drift_share": {"above": 0.3, "for": 2}}
    forms: list[dict[str, Any]] = [
        {"triggers": {"some": [rule]}},
        {"triggers": {"all": [rule], "any": [rule]}},
        {"triggers": [{**rule, "max_age": "30d"}]},
        {"triggers": [{"max_age": None}]},
        {"pipeline": ["retrian", "validate"]},
        {"pipeline": [{"retrain": {"budget": "5 minutes"}}]},
        {"pipeline": [{"retrain": {"budgt": "5m"}}]},
        {"promote": {"holdout": "150%"}},
        {"guards": {"cooldown": -5}},
    ]
    for form in forms:
        data = {**base, **form}
        with pytest.raises(PolicyError):
            parse_policy(yaml.safe_dump(data), name="form.yaml")
        assert not schema.is_valid(data), form


@settings(SETTINGS, max_examples=60)
@given(valid_policies())
def test_generated_valid_policies_validate_against_the_schema(data: dict[str, Any]) -> None:
    schema = jsonschema_rs.validator_for(Policy.model_json_schema(by_alias=True))
    assert _errors(schema, data) == []


#: the broken-policy cases a JSON Schema can see (cross-field rules are the loader's alone)
SCHEMA_CASES = ["unknown_key", "wrong_type", "missing", "two_kinds", "bad_fraction"]


@pytest.mark.parametrize("case", SCHEMA_CASES)
@settings(SETTINGS, max_examples=25, phases=[Phase.explicit, Phase.generate])
@given(data=st.data())
def test_broken_policies_fail_the_schema_as_they_fail_validate(
    case: str, data: st.DataObject
) -> None:
    broken = data.draw(broken_policies(case))
    with pytest.raises(PolicyError):
        parse_policy(yaml.safe_dump(broken.data), name="broken.yaml")
    schema = jsonschema_rs.validator_for(Policy.model_json_schema(by_alias=True))
    assert not schema.is_valid(broken.data), (case, broken.path)
