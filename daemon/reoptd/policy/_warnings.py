"""Warnings about valid policies that cannot work as written: triggers that can never fire.

They are not errors (the file is valid and the daemon runs it); ``reoptd policy validate`` and
``policy explain`` print them, so a trigger that would wait forever is seen before deploying it.
"""

from __future__ import annotations

from datetime import timedelta

from reoptd.policy._schema import Policy
from reoptd.policy._units import format_duration

#: how late the demo stream's labels arrive (reoptd.data.demo.LABEL_DELAY)
DEMO_LABEL_DELAY = timedelta(minutes=30)


#: the metrics estimated without labels, per task (``reoptd.monitor`` estimates them)
_ESTIMABLE = {
    "classification": ("accuracy", "f1", "precision", "recall", "roc_auc"),
    "regression": ("mae", "rmse"),
}


def label_delay(policy: Policy) -> timedelta | None:
    """How late labels arrive: ``data.label_delay``, else the demo stream's, else unknown."""
    if policy.data.label_delay is not None:
        return policy.data.label_delay
    if policy.data.production.kind == "demo":
        return DEMO_LABEL_DELAY
    return None


def policy_warnings(policy: Policy) -> list[str]:
    """One sentence per trigger that can never fire (or a setting that defeats one)."""
    found: list[str] = []
    window = policy.monitor.window
    delay = label_delay(policy)
    for i, trigger in enumerate(policy.triggers):
        where = f"triggers.{i}.{trigger.kind}"
        metric = trigger.metric
        if metric is not None and delay is not None and delay >= window:
            found.append(
                f"{where}: labels arrive {format_duration(delay)} after their rows, not before"
                f" the monitor.window of {format_duration(window)} ends: no checked row is ever"
                f" labelled, so min_labels {metric.min_labels} is never met and this trigger"
                " never fires (widen monitor.window beyond the label delay)"
            )
        if trigger.estimated_metric is not None:
            name = trigger.estimated_metric.name or policy.metric
            if name not in _ESTIMABLE[policy.task]:
                found.append(
                    f"{where}: {name!r} is not estimated without labels for a {policy.task}"
                    f" model (only {', '.join(_ESTIMABLE[policy.task])}), so this trigger never"
                    " fires"
                )
            elif not policy.monitor.estimate:
                found.append(f"{where}: monitor.estimate is false, so nothing is estimated")
        drift_share = trigger.drift_share
        if drift_share is not None and drift_share.above >= 1:
            found.append(
                f"{where}: the share of drifted features cannot exceed {drift_share.above:g}"
                " (it is at most 1), so this trigger never fires"
            )
    every = policy.monitor.every
    if every > window:
        found.append(
            f"monitor.every {format_duration(every)} is longer than monitor.window"
            f" {format_duration(window)}: rows between two windows are never checked"
        )
    return found
