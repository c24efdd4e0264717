"""The ``augment`` step: data-side options (class rebalancing, torch noise/mixup), each a
candidate judged on the untouched holdout and kept only if it wins (options: ``augment``)."""

from __future__ import annotations

from typing import Any

from reoptd.plugins import STEPS, StepPlugin

__all__ = ["STEP"]


def _create() -> Any:
    from reoptd.optimize._augment import Augment

    return Augment()


def _check(policy: Any) -> list[str]:
    steps = policy.steps
    problems = []
    if "retrain" in steps and steps.index("retrain") > steps.index("augment"):
        problems.append("pipeline: `augment` must come after `retrain`")
    for after in ("compress", "validate"):
        if after in steps and steps.index(after) < steps.index("augment"):
            problems.append(f"pipeline: `augment` must come before `{after}`")
    spec, task, family = policy.augment, policy.task, policy.train.family
    for method in spec.methods or []:
        problem = spec.problem(method, task, family)
        if problem:
            problems.append(f"augment.methods: {problem}")
    if not spec.applicable(task, family):
        problems.append(f"augment.methods: no option applies to a {task} model of family {family}")
    return problems


STEP = STEPS.register(
    StepPlugin(
        name="augment",
        description="try class rebalancing (random over/under-sampling, SMOTE) and, for torch,"
        " noise and mixup; an option replaces the challenger only if it wins on the holdout"
        " (`augment`)",
        create=_create,
        check=_check,
    )
)
