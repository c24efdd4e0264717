"""Tuning the policy itself: an Optuna multi-objective search over a policy's triggers, guards
and training window, each trial a backtest, the front measured on held-out history."""

from reoptd.policy_tune._errors import TuneError
from reoptd.policy_tune._pick import Pick, parse_pick, pick, table, write_policy
from reoptd.policy_tune._plot import plot_front
from reoptd.policy_tune._study import Candidate, TuneResult, tune_policy
from reoptd.policy_tune._trial import Scores

__all__ = [
    "Candidate",
    "Pick",
    "Scores",
    "TuneError",
    "TuneResult",
    "parse_pick",
    "pick",
    "plot_front",
    "table",
    "tune_policy",
    "write_policy",
]
