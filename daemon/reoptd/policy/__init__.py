"""Policies: the YAML files users configure re-optimization with, and the decision they drive."""

from reoptd.policy._decide import CheckView, Decision, ModelState, checks_needed, decide
from reoptd.policy._explain import explain
from reoptd.policy._load import load_policies, load_policy, parse_policy
from reoptd.policy._schema import METRICS, Costs, Param, Policy
from reoptd.policy._units import (
    Duration,
    Fraction,
    Size,
    format_duration,
    format_size,
    parse_duration,
    parse_fraction,
    parse_size,
)
from reoptd.policy._warnings import policy_warnings

__all__ = [
    "METRICS",
    "CheckView",
    "Costs",
    "Decision",
    "Duration",
    "Fraction",
    "ModelState",
    "Param",
    "Policy",
    "Size",
    "checks_needed",
    "decide",
    "explain",
    "format_duration",
    "format_size",
    "load_policies",
    "load_policy",
    "parse_duration",
    "parse_fraction",
    "parse_policy",
    "parse_size",
    "policy_warnings",
]
