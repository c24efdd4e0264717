"""A plain-English account of what a policy will do (``reoptd policy explain``)."""

from __future__ import annotations

from typing import Any

from reoptd.plugins import COMPRESS_METHODS
from reoptd.policy._schema import Policy, Trigger
from reoptd.policy._sql_fields import describe_sql
from reoptd.policy._units import format_duration, format_size
from reoptd.policy._warnings import policy_warnings


def explain(policy: Policy) -> list[str]:
    """Paragraphs, each one sentence or a short list, in the order the daemon acts."""
    f = policy.features
    lines = [
        f"Model `{policy.model}`: {policy.task} of `{policy.target}` from "
        f"{len(f.numerical)} numerical and {len(f.categorical)} categorical features; "
        f"event time in `{policy.timestamp}`.",
        _data(policy),
        _monitor(policy),
        _labels(policy),
    ]
    if policy.triggers:
        joiner = "any" if policy.combine == "any" else "all"
        lines.append(f"It re-optimizes when {joiner} of these hold:")
        lines.extend(f"  - {_trigger(policy, t)}" for t in policy.triggers)
    else:
        lines.append("It has no triggers: it only re-optimizes when asked (`reoptd optimize`).")
    lines.append(_guards(policy))
    lines.append(_run(policy))
    lines.append(_warm(policy))
    if "augment" in policy.steps:
        lines.append(_augment(policy))
    if "compress" in policy.steps:
        lines.append(_compress(policy))
    lines.append(_promote(policy))
    lines.extend(f"Warning: {w}" for w in policy_warnings(policy))
    return lines


def _data(policy: Policy) -> str:
    source = policy.data.production
    if source.kind == "demo":
        return f"Production rows come from the built-in demo stream (seed {source.seed})."
    if source.kind == "api":
        return (
            f"Production rows are POSTed to the daemon's HTTP API (/ingest/{policy.model}/"
            f"predictions), labels to /ingest/{policy.model}/labels, joined on `{policy.id}`."
        )
    if source.kind == "sql":
        return describe_sql(source, "Production rows", policy.timestamp) + "."
    if source.kind == "stream":
        return "Production rows come from " + _stream(source, policy.model, "predictions") + "."
    kind = "Parquet or CSV (by extension)" if source.format == "auto" else source.format
    return f"Production rows come from {kind} files matching `{source.path}`" + _where(source.path)


def _where(path: str | None, labels: bool = False) -> str:
    """How an object-storage path is read: day partitions and credentials."""
    if path is None or "://" not in path:
        return "."
    pruned = any(
        part.split("=")[0] in ("date", "dt", "day") and part.endswith("=*")
        for part in path.split("/")
    )
    if not pruned:
        return " on object storage (credentials and endpoint from the environment)."
    how = (
        "no day partition after a check's end is read"
        if labels
        else "a check lists and reads only the day partitions of its window"
    )
    return f" on object storage (credentials and endpoint from the environment; {how})."


def _stream(spec: Any, model: str, role: str) -> str:
    """A stream block in words: subject, broker, local window, position."""
    broker = f"the broker in ${spec.url_env}" if spec.url_env else "the NATS broker on loopback"
    stream = f" of stream `{spec.stream}`" if spec.stream else ""
    return (
        f"JSON messages on subject `{spec.subject}`{stream} at {broker} (NATS JetStream),"
        f" kept under REOPTD_HOME/streams/{model}/{role} and acked once on disk"
    )


def _monitor(policy: Policy) -> str:
    m = policy.monitor
    drift = m.drift

    def method(name: str | None, threshold: float | None) -> str:
        if name is None:
            return "Evidently's automatic test"
        return name + ("" if threshold is None else f" (threshold {threshold:g})")

    overrides = (
        "; per column: "
        + ", ".join(f"{c}: {method(o.method, o.threshold)}" for c, o in drift.per_column.items())
        if drift.per_column
        else ""
    )
    return (
        f"Every {format_duration(m.every)} it checks the rows of the last "
        f"{format_duration(m.window)} (skipping windows under {m.min_rows} rows) against "
        f"{_reference(policy)}: numerical features with "
        f"{method(drift.method, drift.threshold)}, categorical ones with "
        f"{method(drift.cat_method, drift.cat_threshold)}{overrides}. The dataset counts as "
        f"drifted when {drift.drift_share:.0%} of features drift. It also measures "
        f"{policy.metric} on rows whose labels have arrived and the drift of the champion's "
        f"predictions."
    )


def _reference(policy: Policy) -> str:
    """What the checked window is compared with (``monitor.reference``)."""
    m = policy.monitor
    if m.reference == "previous_window":
        return (
            f"the {format_duration(m.window)} just before it (the previous window: a shift is"
            " flagged while it happens, then the new normal is the reference)"
        )
    if m.reference == "training":
        return f"up to {m.reference_rows} rows of the champion's training data"
    span = m.reference.fixed
    return (
        f"up to {m.reference_rows} production rows from {span.start:%Y-%m-%d %H:%M} to"
        f" {span.end:%Y-%m-%d %H:%M} (a fixed reference, whichever version is champion)"
    )


def _labels(policy: Policy) -> str:
    """Late labels, backfill, estimation, target and multivariate drift, in one paragraph."""
    m = policy.monitor
    labels = policy.data.labels
    parts = []
    if labels is not None and labels.kind == "sql":
        assert labels.arrived is not None
        parts.append(
            describe_sql(labels, "Labels", labels.arrived)
            + f"; they join predictions on `{policy.id}` (the last label for an id wins: a"
            " corrected label with a later arrival time replaces the earlier one)."
        )
    elif labels is not None:
        when = f", arriving at the time in `{labels.arrived}`" if labels.arrived else ""
        origin = (
            _stream(labels, policy.model, "labels")
            if labels.kind == "stream"
            else f"files matching `{labels.path}`" + _where(labels.path, labels=True).rstrip(".")
        )
        parts.append(
            f"Labels come from {origin}{when} and join predictions on"
            f" `{policy.id}` (the last label for an id wins)."
        )
    if m.backfill.within is not None:
        parts.append(
            f"Checks of the last {format_duration(m.backfill.within)} whose labels arrive later"
            f" are re-scored (up to {m.backfill.max_windows} per check), with the model that was"
            " champion then; metric triggers see the re-scored values."
        )
    if m.estimate and policy.task == "classification":
        parts.append(
            "Without labels it estimates accuracy, precision, recall, f1 and roc_auc from the"
            " champion's confidence, calibrated per class on its holdout, each with a band"
            " (unreliable, and left out, when the window lies outside the holdout's range)."
        )
    elif m.estimate:
        parts.append(
            "Without labels it estimates mae and rmse with a model of the champion's error"
            " fitted on its holdout, each with a band (unreliable, and left out, when the window"
            " lies outside the holdout's range)."
        )
    parts.append(
        f"Target drift is measured once a window has {m.target_drift_min_labels} labelled rows."
    )
    if m.multivariate.enabled:
        parts.append(
            f"Multivariate drift: a classifier tries to tell up to {m.multivariate.sample_rows}"
            f" reference rows from current ones; ROC AUC >= {m.multivariate.threshold:g} counts"
            " as drift."
        )
    return " ".join(parts)


def _times(n: int) -> str:
    return "in the latest check" if n == 1 else f"in {n} consecutive checks"


def _trigger(policy: Policy, trigger: Trigger) -> str:
    if trigger.drift_share is not None:
        t = trigger.drift_share
        return f"more than {t.above:.0%} of features drift {_times(t.for_)}"
    if trigger.drift_features is not None:
        t2 = trigger.drift_features
        return f"any of {', '.join(t2.features)} drifts {_times(t2.for_)}"
    if trigger.prediction_drift is not None:
        return f"the champion's predictions drift {_times(trigger.prediction_drift.for_)}"
    if trigger.metric is not None:
        t3 = trigger.metric
        name = t3.name or policy.metric
        if t3.below is not None:
            what = f"{name} falls below {t3.below:g}"
        elif t3.above is not None:
            what = f"{name} rises above {t3.above:g}"
        else:
            what = f"{name} is more than {t3.drop:g} worse than the champion's validation {name}"
        return f"{what} {_times(t3.for_)}, once at least {t3.min_labels} labels have arrived"
    if trigger.estimated_metric is not None:
        t4 = trigger.estimated_metric
        name = t4.name or policy.metric
        what = f"falls below {t4.below:g}" if t4.below is not None else f"rises above {t4.above:g}"
        if t4.confidence is not None:
            what = f"{what}, with its whole {t4.confidence:.0%} band past it,"
        return f"the estimated {name} (before labels) {what} {_times(t4.for_)}"
    if trigger.new_rows is not None:
        return (
            f"at least {trigger.new_rows.at_least} rows arrived after the champion's training data"
        )
    if trigger.multivariate_drift is not None:
        t5 = trigger.multivariate_drift
        return (
            f"a classifier tells current rows from the reference with ROC AUC above"
            f" {t5.above:g} {_times(t5.for_)} (multivariate drift)"
        )
    if trigger.schedule is not None:
        return f"the cron schedule `{trigger.schedule}` (UTC) comes due"
    assert trigger.max_age is not None
    return f"the champion is older than {format_duration(trigger.max_age)}"


def _guards(policy: Policy) -> str:
    g = policy.guards
    parts = []
    if g.cooldown:
        parts.append(f"waits at least {format_duration(g.cooldown)} between runs")
    if g.max_runs_per_day is not None:
        times = "once" if g.max_runs_per_day == 1 else f"{g.max_runs_per_day} times"
        parts.append(f"runs at most {times} in any 24 hours")
    if g.max_compute_per_day is not None:
        parts.append(
            f"spends at most {format_duration(g.max_compute_per_day)} re-optimizing per 24 hours"
        )
    if not parts:
        return "No guards: it re-optimizes every time a trigger fires."
    return "Guards: it " + ", ".join(parts) + "; a blocked run is recorded with the reason."


def _run(policy: Policy) -> str:
    t = policy.train
    params = ", ".join(f"{k}={v}" for k, v in t.params.items()) or "default parameters"
    steps = []
    for step in policy.pipeline:
        budget = f" (budget {format_duration(step.budget)})" if step.budget else ""
        steps.append(step.name + budget)
    holdout = policy.promote.holdout
    learner = "a torch MLP" if t.family == "torch" else t.estimator
    return (
        f"A run ({' -> '.join(steps)}) trains {learner} ({params}) on the labelled rows of "
        f"the last {format_duration(t.window)}, needing at least {t.min_rows}, and holds out the "
        f"newest {holdout:.0%} of them, which neither model has seen, for validation."
    )


def _warm(policy: Policy) -> str:
    t = policy.train
    if t.warm_start == "never":
        return "Each challenger is trained from scratch (`warm_start: never`)."
    if t.family == "torch":
        how = (
            f"fine-tuned from the champion's weights (its preprocessing kept, new categories"
            f" added as fresh inputs) at {t.warm_lr:g}x the learning rate for at most"
            f" {t.warm_budget:.0%} of the epochs"
        )
    else:
        how = (
            f"continued from the champion on the new window ({t.warm_budget:.0%} more boosting"
            " iterations or trees where the estimator has `warm_start`, else its old solution as"
            " the starting point, or one `partial_fit` pass)"
        )
    if t.warm_start == "always":
        return (
            f"Each challenger is {how}; it is trained from scratch only when the champion cannot"
            " be continued (no champion yet, other features, a quantized network)."
        )
    return (
        f"Besides one trained from scratch, a second challenger is {how}; the holdout keeps the"
        " better one (the warm one on a tie) and the run records which won and the seconds each"
        " took."
    )


def _augment(policy: Policy) -> str:
    methods = policy.augment.applicable(policy.task, policy.train.family)
    words = {
        "random_over": "random over-sampling of the minority classes",
        "random_under": "random under-sampling of the majority class",
        "smote": f"SMOTE ({policy.augment.k_neighbors} neighbours)",
        "noise": f"Gaussian noise of {policy.augment.noise:g} standard deviations while training",
        "mixup": f"mixup (alpha {policy.augment.mixup:g}) while training",
    }
    return (
        "The augment step then trains one more challenger the same way for each of: "
        + "; ".join(words[m] for m in methods)
        + f". Each is judged on the untouched holdout for {policy.metric}, and one replaces the"
        " challenger only if it beats it."
    )


def _trigger_metrics(policy: Policy) -> list[str]:
    return [t.metric.name or policy.metric for t in policy.triggers if t.metric is not None]


def _promote(policy: Policy) -> str:
    p = policy.promote
    better = "higher" if policy.higher_is_better() else "lower"
    text = (
        f"The challenger must beat the champion's {policy.metric} on that holdout by at least "
        f"{p.min_improvement:g} ({better} is better)"
    )
    if p.costs is not None and "value" in (policy.metric, *_trigger_metrics(policy)):
        c = p.costs
        text += (
            f"; `value` is the mean value per row of its decisions: {c.tp:g} per true positive,"
            f" {c.fp:g} per false positive, {c.fn:g} per false negative, {c.tn:g} per true"
            " negative"
        )
    limits = []
    if p.max_latency is not None:
        limits.append(f"predict a row in under {format_duration(p.max_latency)}")
    if p.max_size is not None:
        limits.append(f"stay under {format_size(p.max_size)}")
    if limits:
        text += " and " + " and ".join(limits)
    if p.mode == "auto":
        text += "; it then becomes the champion at once, in one transaction."
    elif p.mode == "manual":
        text += "; it then waits for `reoptd models approve` before it becomes the champion."
    else:
        text += (
            f"; it then scores live rows beside the champion in shadow and is promoted only if "
            f"it wins on labelled rows in {p.shadow_checks} checks."
        )
    if p.rollback is not None:
        r = p.rollback
        text += (
            f" For {format_duration(r.within)} after a promotion, if the new champion's live "
            f"{policy.metric} is worse than its predecessor's on the same new rows by more than "
            f"{r.drop:g} (judged once {r.min_labels} labels arrived), it is rolled back."
        )
    return text


def _compress(policy: Policy) -> str:
    c = policy.compress
    methods = [COMPRESS_METHODS.get(m) for m in c.methods]
    words = [m.explain(policy) if m.explain else m.description for m in methods]
    what = (
        "the new challenger"
        if "retrain" in policy.steps
        else "the current champion (there is no retrain step)"
    )
    goal = (
        f"the lowest median latency at batch size {c.batch_size}"
        if c.objective == "latency"
        else "the smallest artifact"
    )
    timer = (
        "CPU time of one thread" if c.timer == "cpu" else f"elapsed time on {c.threads} thread(s)"
    )
    ends = [m for m in methods if m.ends_chain]
    one_quantization = (
        " (a chain ends with one of the quantizations at most)" if len(ends) > 1 else ""
    )
    others = [b for b in c.all_batch_sizes if b != c.batch_size]
    also = f", also at batch {', '.join(map(str, others))}" if others else ""
    return (
        f"The compress step takes {what} and tries {', '.join(words)}, each alone and chained in"
        f" that order{one_quantization}. Every candidate is measured on the holdout for"
        f" {policy.metric}, for its artifact size and for its latency ({timer}, {c.repetitions}"
        f" calls after a warm-up"
        f"{also}); it keeps {goal} among candidates that lose at most"
        f" {c.max_metric_drop:g} {policy.metric}, and never one worse than the uncompressed"
        " model on that objective (if none qualifies, the model stays uncompressed)."
        + (
            f" A latency win counts only when it is at least {c.min_speedup:g}x and the 95%"
            " confidence intervals of the two medians do not overlap (less is timing noise)."
            if c.objective == "latency"
            else ""
        )
        + _serving(policy)
    )


def _serving(policy: Policy) -> str:
    c = policy.compress
    if c.serving == "python":
        return " Every candidate is served in its family's own form (compress.serving: python)."
    check = (
        f" Every candidate, the uncompressed model included, is also exported to ONNX (its"
        f" preprocessing kept as numbers and run on numpy arrays) and timed under ONNX Runtime"
        f" as it serves; an ONNX form counts only if its outputs equal the Python form's on the"
        f" holdout within {c.serving_tolerance:g}."
    )
    if c.serving == "onnx":
        return check + (
            " Only ONNX forms are chosen (compress.serving: onnx): the version's artifact loads"
            " without running code."
        )
    return check + " The fastest form wins, ONNX or Python (compress.serving: auto)."
