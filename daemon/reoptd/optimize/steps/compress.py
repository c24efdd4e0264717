"""The ``compress`` step: the best compressed form of the challenger (or of the champion),
chosen by measurement (options: the policy's ``compress`` block, and each method's own)."""

from __future__ import annotations

from typing import Any

from reoptd.plugins import COMPRESS_METHODS, STEPS, StepPlugin

__all__ = ["STEP"]


def _create() -> Any:
    from reoptd.optimize._compress import Compress

    return Compress()


def _check(policy: Any) -> list[str]:
    steps = policy.steps
    problems = []
    for before in ("retrain", "tune"):
        if before in steps and steps.index(before) > steps.index("compress"):
            problems.append(f"pipeline: `compress` must come after `{before}`")
    if "validate" in steps and steps.index("validate") < steps.index("compress"):
        problems.append("pipeline: `validate` must come after `compress`")
    methods = policy.compress.methods
    if len(set(methods)) != len(methods):
        problems.append("compress.methods: a method is listed twice")
    starters = [m for m in COMPRESS_METHODS.plugins() if m.any_model]
    family = policy.train.family
    if family != "torch" and not any(m.name in methods for m in starters):
        names = " or ".join(f"`{m.name}`" for m in starters)
        problems.append(
            f"compress.methods: an {family} model can only be compressed by {names} (into a"
            " torch MLP student, which the other methods then compress); add "
            + ", ".join(f"`{m.name}`" for m in starters)
        )
    return problems


STEP = STEPS.register(
    StepPlugin(
        name="compress",
        description="replace the model by its best compressed form, chosen by measurement",
        create=_create,
        check=_check,
    )
)
