"""Every Prometheus metric reoptd exports, built against an injectable ``CollectorRegistry``.

Events of a cycle are exported by one call each, from what the cycle recorded:
``export_check`` (a check with its signals), ``export_decision`` and ``export_run``. Everything the
store records durably (champion version, model age and size, promotions and
rollbacks) is read at scrape time by ``ChampionCollector``, so it is never stale after a restart
and counts a promotion or rollback made from the CLI in another process.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reoptd.clock import Clock
from reoptd.policy import Policy

if TYPE_CHECKING:
    from reoptd.monitor import CheckResult
    from reoptd.policy import Decision
    from reoptd.signals import Signals
    from reoptd.store import RunRecord, Store

log = logging.getLogger("reoptd.metrics")

# Every counter and histogram child also exports a ``_created`` timestamp sample: with hundreds
# of models that is a third of /metrics (the scrape's time and the series stored), and no
# dashboard or alert of reoptd reads it (Prometheus derives resets from the counter itself).
disable_created_metrics()

OUTCOMES = ("promoted", "rejected", "pending", "shadow", "failed")
#: the parts of a cycle an unexpected error is counted under (``reoptd_cycle_errors_total``)
CYCLE_STAGES = ("check", "backfill", "promotion", "record", "decide", "optimize", "store")
_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


_MINUTES = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)


class Metrics:
    """Every metric, on one registry. ``max_features`` caps the per-feature series of a model
    (the first features of its policy get them) so cardinality stays bounded."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        max_features: int = 50,
        process: bool = False,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.max_features = max_features
        self._features: dict[str, set[str]] = {}
        self._seen_until: dict[str, datetime] = {}  # end of each model's last counted window
        self._estimated: dict[str, set[tuple[str, str]]] = {}  # (metric, bound) series exported
        r = self.registry
        m = ["model"]
        if process:  # the daemon's own process: CPU, memory, file descriptors, Python version
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        self.scheduler_lag = Histogram(
            "reoptd_scheduler_lag_seconds",
            "How late a scheduled check started (wall clock)",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.jobs_running = Gauge("reoptd_jobs_running", "Cycles running right now", registry=r)
        self.model_owned = Gauge(
            "reoptd_model_owned",
            "1 while this replica checks the model, 0 while another replica holds it",
            m,
            registry=r,
        )
        self.runs_executing = Gauge(
            "reoptd_runs_executing",
            "Re-optimization runs this replica's executor is executing now",
            registry=r,
        )
        self.check_interval = Gauge(
            "reoptd_check_interval_seconds",
            "The policy's monitor.every, in the daemon clock's seconds",
            m,
            registry=r,
        )
        self.metric_floor = Gauge(
            "reoptd_metric_floor",
            "The floor a metric trigger fires below (policy), for dashboards and alerts",
            [*m, "metric"],
            registry=r,
        )
        self.reoptimization_duration = Histogram(
            "reoptd_reoptimization_duration_seconds",
            "Time a whole re-optimization run takes",
            m,
            buckets=_MINUTES,
            registry=r,
        )
        self.metric_threshold = Gauge(
            "reoptd_metric_threshold",
            "The value at which a metric trigger fires, for every kind (`trigger`: below, above,"
            " drop; `drop` from the champion's validation metric); `fires`: below or above it",
            [*m, "metric", "trigger", "fires"],
            registry=r,
        )
        self.feature_drift_ratio = Gauge(
            "reoptd_feature_drift_ratio",
            "A feature's drift normalised so that drifted is always up: distance / threshold, or"
            " threshold / p-value for tests; at or above 1 means drifted (capped at 100)",
            [*m, "feature"],
            registry=r,
        )
        self.drift_share = Gauge(
            "reoptd_drift_share", "Share of features Evidently flags as drifted", m, registry=r
        )
        self.feature_drift_score = Gauge(
            "reoptd_feature_drift_score",
            "Drift score of a feature (p-value or distance, see the method in the check)",
            [*m, "feature"],
            registry=r,
        )
        self.feature_drifted = Gauge(
            "reoptd_feature_drifted",
            "1 if the feature is flagged as drifted",
            [*m, "feature"],
            registry=r,
        )
        self.feature_drift_threshold = Gauge(
            "reoptd_feature_drift_threshold",
            "Threshold of the feature's drift test: p-values drift below it, distances above it",
            [*m, "feature"],
            registry=r,
        )
        self.drift_share_threshold = Gauge(
            "reoptd_drift_share_threshold",
            "The drift share a drift_share trigger fires above (policy)",
            m,
            registry=r,
        )
        self.dataset_drift = Gauge(
            "reoptd_dataset_drift",
            "1 if the drift share reaches the dataset threshold",
            m,
            registry=r,
        )
        self.model_metric = Gauge(
            "reoptd_model_metric",
            "Champion's metric on labelled rows of the last window",
            [*m, "metric"],
            registry=r,
        )
        self.prediction_drift_score = Gauge(
            "reoptd_prediction_drift_score",
            "Drift score of the champion's predictions (current window vs reference)",
            m,
            registry=r,
        )
        self.prediction_drifted = Gauge(
            "reoptd_prediction_drifted", "1 if the champion's predictions drifted", m, registry=r
        )
        self.labelled_rows = Gauge(
            "reoptd_labelled_rows", "Labelled rows in the last checked window", m, registry=r
        )
        self.rows_seen = Counter("reoptd_rows_seen", "Production rows checked", m, registry=r)
        self.data_errors = Counter(
            "reoptd_data_errors",
            "Batches rejected as bad data (missing column, dtype, NaN, inf)",
            m,
            registry=r,
        )
        self.cycle_errors = Counter(
            "reoptd_cycle_errors",
            "Cycles cut short by an unexpected error, by stage (check, backfill, promotion,"
            " record, decide, optimize; store: the database could not be reached), each"
            " recorded as a failed check or run naming the error",
            [*m, "stage"],
            registry=r,
        )
        self.champion_loadable = Gauge(
            "reoptd_champion_loadable",
            "1 if the champion's artifacts load and verify (sha256), 0 if it is missing or"
            " corrupt (set by each cycle)",
            m,
            registry=r,
        )
        self.checks = Counter(
            "reoptd_checks",
            "Monitoring checks by outcome (ok, failed, skipped)",
            [*m, "outcome"],
            registry=r,
        )
        self.checks_skipped = Counter(
            "reoptd_checks_skipped",
            "Scheduled checks not started because a cycle of the model was still running (a long"
            " re-optimization in this daemon, or `reoptd check`/`optimize` holding the model);"
            ' a check that ran and found too few rows is reoptd_checks_total{outcome="skipped"}',
            m,
            registry=r,
        )
        self.check_duration = Histogram(
            "reoptd_check_duration_seconds",
            "Time one check takes",
            m,
            buckets=_SECONDS,
            registry=r,
        )
        self.last_check = Gauge(
            "reoptd_last_successful_check_timestamp_seconds",
            "Time of the last successful check (Unix seconds, daemon clock)",
            m,
            registry=r,
        )
        self.decisions = Counter(
            "reoptd_decisions", "Policy decisions (fire or hold)", [*m, "outcome"], registry=r
        )
        self.reoptimizations = Counter(
            "reoptd_reoptimizations",
            "Re-optimization runs by trigger and outcome",
            [*m, "trigger", "outcome"],
            registry=r,
        )
        self.step_duration = Histogram(
            "reoptd_step_duration_seconds",
            "Time a re-optimization step takes",
            [*m, "step"],
            buckets=_SECONDS,
            registry=r,
        )
        self.policy_valid = Gauge(
            "reoptd_policy_valid", "1 if the model's policy file is valid", m, registry=r
        )
        self.policy_file_errors = Counter(
            "reoptd_policy_file_errors",
            "Policy files skipped at start as invalid (see the log for each file and why)",
            registry=r,
        )
        self.webhook_failures = Counter(
            "reoptd_webhook_failures",
            "Webhook deliveries given up after every retry failed",
            m,
            registry=r,
        )
        self.mlflow_sync_errors = Counter(
            "reoptd_mlflow_sync_errors",
            "MLflow sync passes of the model that failed (retried at the next pass; see the log)",
            m,
            registry=r,
        )
        self.feature_tested = Gauge(
            "reoptd_feature_tested",
            "1 if the feature's drift test ran in the last check, 0 if not (see the check's"
            " feature status: wrong type, no values, too few values, ...)",
            [*m, "feature"],
            registry=r,
        )
        self.features_untested = Gauge(
            "reoptd_features_untested",
            "Features whose drift test could not run in the last check",
            m,
            registry=r,
        )
        self.feature_missing_share = Gauge(
            "reoptd_feature_missing_share",
            "Share of missing values of a feature in the last checked window",
            [*m, "feature"],
            registry=r,
        )
        self.feature_out_of_range_share = Gauge(
            "reoptd_feature_out_of_range_share",
            "Share of a numerical feature's values outside the reference's [min, max]",
            [*m, "feature"],
            registry=r,
        )
        self.feature_unseen_share = Gauge(
            "reoptd_feature_unseen_share",
            "Share of rows whose category the reference never had (categorical features)",
            [*m, "feature"],
            registry=r,
        )
        self.schema_changes = Gauge(
            "reoptd_schema_changes",
            "Columns missing, retyped, or unknown to the policy in the last checked window",
            [*m, "change"],
            registry=r,
        )
        self.data_quality_issues = Gauge(
            "reoptd_data_quality_issues",
            "Data quality problems over the policy's tolerances in the last checked window",
            m,
            registry=r,
        )

        self.estimated_metric = Gauge(
            "reoptd_estimated_metric",
            "Champion's metric estimated without labels on the last window (bound: the estimate,"
            " or the lower or upper end of its band); NaN when the window lies outside the"
            " holdout's support",
            [*m, "metric", "bound"],
            registry=r,
        )
        self.estimation_error = Gauge(
            "reoptd_estimation_error",
            "Label-free estimate minus the realised metric, for the window whose labels arrived"
            " most recently",
            [*m, "metric"],
            registry=r,
        )
        self.target_drift_score = Gauge(
            "reoptd_target_drift_score",
            "Drift score of the target: labelled rows of the window vs the reference's labels",
            m,
            registry=r,
        )
        self.target_drifted = Gauge(
            "reoptd_target_drifted", "1 if the target's distribution drifted", m, registry=r
        )
        self.multivariate_auc = Gauge(
            "reoptd_multivariate_drift_auc",
            "Cross-validated ROC AUC of a classifier telling reference from current rows"
            " (0.5: indistinguishable)",
            m,
            registry=r,
        )
        self.multivariate_drifted = Gauge(
            "reoptd_multivariate_drifted",
            "1 if the domain classifier's AUC reaches monitor.multivariate.threshold",
            m,
            registry=r,
        )
        self.backfilled_metric = Gauge(
            "reoptd_backfilled_metric",
            "Champion's metric on the past window most recently re-scored as its labels arrived",
            [*m, "metric"],
            registry=r,
        )
        self.backfilled_windows = Counter(
            "reoptd_backfilled_windows",
            "Past windows re-scored because their labels arrived after the check",
            m,
            registry=r,
        )
        self.unmatched_labels = Gauge(
            "reoptd_unmatched_labels",
            "Labels of the last window that match no prediction by id (separate label feed)",
            m,
            registry=r,
        )
        self.duplicate_labels = Gauge(
            "reoptd_duplicate_labels",
            "Labels replaced by a later label for the same id (separate label feed)",
            m,
            registry=r,
        )

    def observe_monitoring(self, model: str, result: CheckResult) -> None:
        """Per-feature test status and data quality of a check (per-feature series capped)."""
        untested = sum(not drift.tested for drift in result.features.values())
        for feature in self.features(model, result.features):
            self.feature_tested.labels(model, feature).set(int(result.features[feature].tested))
        self.features_untested.labels(model).set(untested)
        quality = result.quality
        if quality is None:
            return
        shares = (
            (self.feature_missing_share, quality.missing_share),
            (self.feature_out_of_range_share, quality.out_of_range_share),
            (self.feature_unseen_share, quality.unseen_share),
        )
        for gauge, values in shares:
            for feature in self.features(model, values):
                gauge.labels(model, feature).set(values[feature])
        self.schema_changes.labels(model, "missing").set(len(quality.missing_columns))
        self.schema_changes.labels(model, "retyped").set(len(quality.retyped_columns))
        self.schema_changes.labels(model, "extra").set(len(quality.extra_columns))
        self.data_quality_issues.labels(model).set(len(quality.flagged))

    def features(self, model: str, names: Iterable[str]) -> list[str]:
        """The features of ``model`` that get per-feature series (at most ``max_features``)."""
        kept = self._features.setdefault(model, set())
        out = []
        for name in names:
            if name in kept or len(kept) < self.max_features:
                kept.add(name)
                out.append(name)
        return out

    def export_check(
        self,
        model: str,
        status: str,
        result: CheckResult | None = None,
        signals: Signals | None = None,
        *,
        data_error: bool = False,
    ) -> None:
        """One check of ``model``: its outcome, and for a check that ran (``result``) every
        gauge it measured; the windows it backfilled and the label join (``signals``).
        ``data_error``: the window could not be read (counted as a data error)."""
        self.checks.labels(model, status).inc()
        if data_error:
            self.data_errors.labels(model).inc()
        if result is not None:
            self._export_result(model, result)
        if signals is not None:
            self._export_cycle_signals(model, signals)

    def _export_result(self, model: str, result: CheckResult) -> None:
        self.drift_share.labels(model).set(result.drift_share)
        self.dataset_drift.labels(model).set(int(result.dataset_drift))
        for feature in self.features(model, result.features):
            drift = result.features[feature]
            if drift.score is None:  # not tested: reoptd_feature_tested says so
                continue
            self.feature_drift_score.labels(model, feature).set(drift.score)
            self.feature_drifted.labels(model, feature).set(int(drift.drifted))
            if drift.threshold is not None:
                self.feature_drift_threshold.labels(model, feature).set(drift.threshold)
                ratio = drift_ratio(drift.score, drift.threshold, drift.method)
                self.feature_drift_ratio.labels(model, feature).set(ratio)
        for metric, value in result.metrics.items():
            self.model_metric.labels(model, metric).set(value)
        self.labelled_rows.labels(model).set(result.labelled_rows)
        prediction = result.prediction_drift
        if prediction is not None and prediction.tested and prediction.score is not None:
            self.prediction_drift_score.labels(model).set(prediction.score)
            self.prediction_drifted.labels(model).set(int(prediction.drifted))
        self.observe_monitoring(model, result)
        self.export_label_signals(model, result.signals)
        if result.data_problem:
            self.data_errors.labels(model).inc()
        self.rows_seen.labels(model).inc(self._new_rows(model, result))
        self.check_duration.labels(model).observe(result.seconds)
        self.last_check.labels(model).set(result.window_end.timestamp())

    def _new_rows(self, model: str, result: CheckResult) -> int:
        """Rows of the window not counted before: those after the previous window's end (windows
        overlap when monitor.window is longer than monitor.every)."""
        previous = self._seen_until.get(model)
        self._seen_until[model] = max(previous or result.window_end, result.window_end)
        if previous is None or result.row_times is None:
            return result.rows
        return int((result.row_times >= previous).sum())

    def export_thresholds(self, policy: Policy, validation: dict[str, float]) -> None:
        """Where each metric trigger fires; ``drop`` needs the champion's ``validation``
        metrics (called at each decision, so a new champion moves its thresholds)."""
        for trigger in policy.triggers:
            spec = trigger.metric
            if spec is None:
                continue
            metric = spec.name or policy.metric
            higher = policy.higher_is_better(metric)
            if spec.drop is not None:
                base = validation.get(metric)
                if base is None:
                    continue
                kind, value = "drop", base - spec.drop if higher else base + spec.drop
            elif spec.below is not None:
                kind, value, higher = "below", spec.below, True
            else:
                assert spec.above is not None
                kind, value, higher = "above", spec.above, False
            fires = "below" if higher else "above"
            self.metric_threshold.labels(policy.model, metric, kind, fires).set(value)
            if higher:
                self.metric_floor.labels(policy.model, metric).set(value)

    def _export_cycle_signals(self, model: str, signals: Signals) -> None:
        for window in signals.backfilled or []:
            realised = window.realised or {}
            self.export_backfill(model, {**realised, **window.metrics})
            for metric, value in (window.estimated or {}).items():
                if metric in realised:
                    self.estimation_error.labels(model, metric).set(value - realised[metric])
        if signals.labels is not None:
            self.export_label_health(model, signals.labels.unmatched, signals.labels.duplicates)

    def export_label_signals(self, model: str, signals: Signals) -> None:
        """A check's estimated metrics with their bands (NaN when the estimate is unreliable),
        target drift and multivariate drift (when measured)."""
        estimation = signals.estimation
        if estimation is not None and not estimation.reliable:
            for labels in self._estimated.get(model, ()):
                self.estimated_metric.labels(model, *labels).set(math.nan)
        for metric, value in signals.estimated.items():
            bounds = {"estimate": value}
            if estimation is not None:
                bounds["lower"] = (estimation.lower or {}).get(metric, math.nan)
                bounds["upper"] = (estimation.upper or {}).get(metric, math.nan)
            for bound, number in bounds.items():
                self.estimated_metric.labels(model, metric, bound).set(number)
                self._estimated.setdefault(model, set()).add((metric, bound))
        if estimation is not None:
            for metric, error in estimation.errors(signals.estimated).items():
                self.estimation_error.labels(model, metric).set(error)
        target = signals.target_drift
        if target is not None and target.score is not None:
            self.target_drift_score.labels(model).set(target.score)
            self.target_drifted.labels(model).set(int(target.drifted))
        joint = signals.multivariate
        if joint is not None:
            self.multivariate_auc.labels(model).set(joint.auc)
            self.multivariate_drifted.labels(model).set(int(joint.drifted))

    def export_backfill(self, model: str, metrics: dict[str, float]) -> None:
        """One past window re-scored with its late labels."""
        self.backfilled_windows.labels(model).inc()
        for metric, value in metrics.items():
            self.backfilled_metric.labels(model, metric).set(value)

    def export_label_health(self, model: str, unmatched: int, duplicates: int) -> None:
        self.unmatched_labels.labels(model).set(unmatched)
        self.duplicate_labels.labels(model).set(duplicates)

    def export_decision(self, model: str, decision: Decision) -> None:
        self.decisions.labels(model, "fire" if decision.fire else "hold").inc()

    def export_run(self, model: str, run: RunRecord) -> None:
        """A finished re-optimization run: its outcome, and the time of each step that ran."""
        for step, record in (run.steps or {}).items():
            self.step_duration.labels(model, step).observe(record["seconds"])
        if run.steps:
            self.reoptimization_duration.labels(model).observe(run.seconds)
        self.reoptimizations.labels(model, run.trigger, run.outcome).inc()

    def declare(self, policy: Policy) -> None:
        """Create a model's series at zero so dashboards and alerts see them before any event.
        Called again on a policy reload: policy-derived gauges follow the new file."""
        name = policy.model
        self.check_interval.labels(name).set(policy.monitor.every.total_seconds())
        for trigger in policy.triggers:
            if trigger.drift_share is not None:
                self.drift_share_threshold.labels(name).set(trigger.drift_share.above)
        self.export_thresholds(policy, {})  # below and above now; drop at the first decision
        for outcome in ("ok", "failed", "skipped"):
            self.checks.labels(name, outcome)
        for outcome in ("fire", "hold"):
            self.decisions.labels(name, outcome)
        for kind in {t.kind for t in policy.triggers} | {"bootstrap"}:
            for outcome in OUTCOMES:
                self.reoptimizations.labels(name, kind, outcome)
        self.rows_seen.labels(name)
        self.checks_skipped.labels(name)
        self.webhook_failures.labels(name)
        self.data_errors.labels(name)
        for stage in CYCLE_STAGES:
            self.cycle_errors.labels(name, stage)
        self.backfilled_windows.labels(name)
        self.policy_valid.labels(name).set(1)

    def watch_champions(self, store: Store, clock: Clock) -> None:
        """Export champion info, age and size read from ``store`` at every scrape."""
        self.registry.register(ChampionCollector(store, clock))
        self.registry.register(VersionCollector(store))


class ChampionCollector(Collector):
    """Champion, age, size, version counts, promotions and rollbacks of every model: one
    aggregate read of the store per scrape (``Store.champion_summaries``)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "reoptd_champion_info",
            "The champion version of each model (value 1), with the trigger that trained it and"
            " the reason recorded by the promotion or rollback that made it champion",
            labels=["model", "version", "trigger", "reason"],
        )
        age = GaugeMetricFamily(
            "reoptd_model_age_seconds", "Time since the champion was promoted", labels=["model"]
        )
        size = GaugeMetricFamily(
            "reoptd_model_size_bytes", "Size of the champion's artifact", labels=["model"]
        )
        versions = GaugeMetricFamily(
            "reoptd_model_versions", "Versions registered for the model", labels=["model"]
        )
        latency = GaugeMetricFamily(
            "reoptd_model_latency_seconds",
            "The champion's prediction time per row at batch size 1, measured at validation",
            labels=["model"],
        )
        clock = GaugeMetricFamily(
            "reoptd_clock_time_seconds",
            "The daemon clock (simulated in the demo and backtests): compare check timestamps "
            "with this, not with time()",
        )
        clock.add_metric([], self._clock.now().timestamp())
        promotions = CounterMetricFamily(
            "reoptd_promotions",
            "Champion promotions (from the registry's event log)",
            labels=["model"],
        )
        pending = GaugeMetricFamily(
            "reoptd_pending_approvals",
            "Versions that won validation and wait for approval (promote.mode: manual)",
            labels=["model"],
        )
        rollbacks = CounterMetricFamily(
            "reoptd_rollbacks",
            "Champion rollbacks (from the registry's event log)",
            labels=["model"],
        )
        try:
            summaries = self._store.champion_summaries()
        except Exception as exc:  # a scrape must never fail because the database hiccups
            log.warning("metrics: cannot read champions from the store: %s", exc)
            summaries = []
        now = self._clock.now()
        for m in summaries:
            name = m.name
            versions.add_metric([name], m.versions)
            if m.champion_latency_seconds is not None:
                latency.add_metric([name], m.champion_latency_seconds)
            pending.add_metric([name], m.pending)
            promotions.add_metric([name], m.promotions)
            rollbacks.add_metric([name], m.rollbacks)
            if m.champion_version is None:
                continue
            reason = _label(m.champion_reason) or "no reason recorded"
            info.add_metric([name, str(m.champion_version), m.champion_trigger, reason], 1)
            size.add_metric([name], m.champion_size_bytes)
            if m.champion_since is not None:
                age.add_metric([name], max(0.0, (now - m.champion_since).total_seconds()))
        yield from (info, age, size, versions, promotions, rollbacks, pending, latency, clock)


#: versions per model whose size and latency are exported (the newest; keeps cardinality bounded)
VERSIONS_EXPORTED = 10


class VersionCollector(Collector):
    """Size and latency of each recent version, as recorded by validate and compress."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        size = GaugeMetricFamily(
            "reoptd_version_size_bytes",
            "Size of a version's artifact (the newest versions of each model)",
            labels=["model", "version"],
        )
        latency = GaugeMetricFamily(
            "reoptd_version_latency_seconds",
            "A version's time per predict call at a batch size, measured by the compress step"
            " (percentile 50 or 95; promtool reserves `quantile` for summaries); without"
            " compress, batch_size 1 percentile 50 is validate's per-row time",
            labels=["model", "version", "batch_size", "percentile"],
        )
        compression = GaugeMetricFamily(
            "reoptd_version_compression_info",
            "The compression the compress step chose for a version (value 1): its methods joined"
            " by + (distill+low_rank), `uncompressed` when no candidate won by enough, `none`"
            " when the pipeline has no compress step",
            labels=["model", "version", "compression"],
        )
        try:
            recent = self._store.recent_versions(VERSIONS_EXPORTED)
            for name, versions in recent.items():
                for v in versions:
                    labels = [name, str(v.version)]
                    size.add_metric(labels, v.size_bytes)
                    compression.add_metric([*labels, _compression(v.metrics or {})], 1)
                    for batch, percentile, seconds in _version_latencies(v.metrics or {}):
                        latency.add_metric([*labels, batch, percentile], seconds)
        except Exception as exc:  # a scrape must never fail because the database hiccups
            log.warning("metrics: cannot read versions from the store: %s", exc)
        yield from (size, latency, compression)


#: Evidently methods whose score is a p-value (drift below the threshold); the others are
#: distances (drift at or above it)
P_VALUE_METHODS = frozenset(
    {
        "anderson",
        "chisquare",
        "cramer_von_mises",
        "empirical_mmd",
        "es",
        "fisher_exact",
        "g_test",
        "ks",
        "mannw",
        "t_test",
        "z",
    }
)


def drift_ratio(score: float, threshold: float, method: str | None, cap: float = 100.0) -> float:
    """A drift score over its threshold, oriented so that drifted is up (1 = the threshold):
    ``score / threshold`` for distances, ``threshold / score`` for p-values. Capped at ``cap``."""
    if method in P_VALUE_METHODS:
        ratio = threshold / score if score > 0 else cap
    else:
        ratio = score / threshold if threshold > 0 else cap
    return float(min(max(ratio, 0.0), cap))


#: the longest label value exported for a free-text reason (Grafana shows it in annotations)
REASON_CHARS = 200


def _label(text: str) -> str:
    """A free text as one line of at most ``REASON_CHARS`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 1] + "…"


def _compression(metrics: dict) -> str:
    chosen = metrics.get("compression")
    if not chosen:
        return "none"
    return _label(str(chosen.get("name") or "uncompressed"))


def _version_latencies(metrics: dict) -> Iterator[tuple[str, str, float]]:
    compression = metrics.get("compression") or {}
    by_batch = compression.get("latency_by_batch") or {}
    for batch, values in by_batch.items():
        yield batch, "50", values["p50_ms"] / 1000
        yield batch, "95", values["p95_ms"] / 1000
    if not by_batch and metrics.get("latency_seconds") is not None:
        yield "1", "50", float(metrics["latency_seconds"])
