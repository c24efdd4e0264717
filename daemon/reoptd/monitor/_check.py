"""One monitoring check: the current window against the champion's reference sample."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd

from reoptd.data import Source, labelled, missing_mask, validate_read
from reoptd.errors import DataError, EmptyWindow
from reoptd.models import Model
from reoptd.monitor._dle import LossEstimator
from reoptd.monitor._drift import DriftDetector, FeatureDrift, PredictionDrift, ReferenceStats
from reoptd.monitor._estimate import PerformanceEstimator, class_probabilities
from reoptd.monitor._multivariate import MultivariateDrift, domain_classifier_auc
from reoptd.monitor._performance import evaluate
from reoptd.monitor._quality import Quality, QualityReference
from reoptd.monitor._support import Estimate, Support
from reoptd.monitor._target import TargetDrift
from reoptd.policy import METRICS, Policy
from reoptd.signals import Drift, Estimation, Signals
from reoptd.signals import Multivariate as MultivariateSignal
from reoptd.signals import Quality as QualitySignal
from reoptd.signals import TargetDrift as TargetDriftSignal

log = logging.getLogger("reoptd.monitor")

#: the band's level when no trigger asks for one
DEFAULT_CONFIDENCE = 0.9
#: what is estimated besides the policy's metrics, per task
ESTIMATED = {
    "classification": ("accuracy", "f1", "precision", "recall", "roc_auc", "f1_weighted"),
    "regression": ("mae", "rmse"),
}


@dataclass
class Champion:
    """The model in force and its drift reference, loaded once per version.

    The drift detector prepares the reference side once and is reused by every check while this
    champion stays in force.
    """

    version: int
    model: Model
    reference: pd.DataFrame
    trained_until: datetime | None = None
    #: labelled rows the champion never trained on (its run's holdout), for calibration
    calibration: pd.DataFrame | None = field(default=None, repr=False)
    #: the reference's drift statistics stored with the version (None: computed from the rows)
    stats: ReferenceStats | None = field(default=None, repr=False)
    _detector: DriftDetector | None = field(default=None, repr=False)
    _outputs: PredictionDrift | None = field(default=None, repr=False)
    _quality: QualityReference | None = field(default=None, repr=False)
    _estimator: PerformanceEstimator | LossEstimator | Literal[False] | None = field(
        default=False, repr=False
    )
    _target: TargetDrift | Literal[False] | None = field(default=False, repr=False)

    def detector(self, policy: Policy) -> DriftDetector:
        if self._detector is None:
            self._detector = DriftDetector(policy, self.reference, self.stats)
        return self._detector

    def quality(self, policy: Policy) -> QualityReference:
        if self._quality is None:
            self._quality = QualityReference(policy, self.reference)
        return self._quality

    def output(self, frame: pd.DataFrame) -> np.ndarray:
        """What drift of predictions is measured on: P(positive) if binary, else predictions."""
        score = self.model.predict_score(frame)
        return score if score is not None else self.model.predict(frame)

    def output_drift(self) -> PredictionDrift:
        if self._outputs is None:
            self._outputs = PredictionDrift(self.output(self.reference))
        return self._outputs

    def estimator(self, policy: Policy) -> PerformanceEstimator | LossEstimator | None:
        """The label-free estimator, fitted once: confidence-based for classifiers (binary and
        multiclass), loss-based for regressors; None when the reference has no labels
        (versions registered before labels were kept) or too few."""
        if self._estimator is False:
            self._estimator = None
            rows, where = self.calibration, "holdout"
            if rows is None or len(rows) == 0:
                rows, where = self.reference, "training rows"
            if policy.target in rows.columns:
                features = policy.features
                support = Support.of(rows, features.numerical, features.categorical)
                if policy.task == "classification":
                    self._estimator = PerformanceEstimator.build(
                        self.model, rows, policy.target, where, support
                    )
                else:
                    self._estimator = LossEstimator.build(
                        self.model,
                        rows,
                        policy.target,
                        where,
                        features.numerical,
                        features.categorical,
                        support,
                    )
        return self._estimator

    def target_drift(self, policy: Policy) -> TargetDrift | None:
        """Target drift against the reference's labels; None when the reference has none."""
        if self._target is False:
            self._target = None
            column = policy.target
            if column in self.reference.columns and self.reference[column].notna().any():
                self._target = TargetDrift(policy, self.reference[column])
        return self._target


@dataclass
class CheckResult:
    """What ``check`` measured on one window. ``signals`` is the typed form the cycle stores."""

    window_start: datetime
    window_end: datetime
    rows: int
    labelled_rows: int
    features: dict[str, FeatureDrift] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    #: the drift share reaches ``monitor.drift.drift_share`` (set by ``check``, the one place
    #: it is computed: the stored check and the gauge both read it)
    dataset_drift: bool = False
    prediction_drift: FeatureDrift | None = None
    new_rows: int | None = None
    estimated: dict[str, float] = field(default_factory=dict)  # label-free estimates
    estimation: Estimation | None = None  # how the estimator was calibrated
    target_drift: TargetDriftSignal | None = None
    multivariate: MultivariateDrift | None = None
    model_rows: int | None = None  # rows the model scored, when some lacked a feature
    seconds: float = 0.0
    labelled: pd.DataFrame | None = field(default=None, repr=False)  # not stored
    quality: Quality | None = None
    data_problem: str | None = None  # why the model's outputs were not computed (bad data)
    row_times: pd.Series | None = field(default=None, repr=False)  # the rows' times, not stored

    @property
    def signals(self) -> Signals:
        """The measured signals, as stored in ``checks.signals`` (a new object each time: the
        cycle adds its own parts to it)."""
        prediction = self.prediction_drift
        multivariate = self.multivariate
        return Signals(
            prediction_drift=None
            if prediction is None
            else Drift.model_validate(prediction.to_dict()),
            new_rows=self.new_rows,
            estimated=dict(self.estimated),
            estimation=self.estimation,
            quality=None
            if self.quality is None
            else QualitySignal.model_validate(self.quality.to_dict()),
            data_problem=self.data_problem or None,
            model_rows=self.model_rows,
            target_drift=self.target_drift,
            multivariate=None
            if multivariate is None
            else MultivariateSignal.model_validate(multivariate.to_dict()),
        )

    @property
    def drift_share(self) -> float:
        """Share of drifted features among those tested."""
        tested = [f for f in self.features.values() if f.tested]
        if not tested:
            return 0.0
        return sum(f.drifted for f in tested) / len(tested)

    @property
    def untested(self) -> dict[str, str]:
        """Features that were not tested, with why."""
        return {c: f.status for c, f in self.features.items() if not f.tested}


def metric_names(policy: Policy) -> list[str]:
    """The promotion metric plus every metric a trigger watches."""
    names = [policy.metric]
    for trigger in policy.triggers:
        if trigger.metric is not None:
            name = trigger.metric.name or policy.metric
            if name not in names:
                names.append(name)
    return names


def _complete(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The rows of ``frame`` with none of ``columns`` missing: ``dropna(subset=columns)``'s
    rows, without its copy of the columns and row-wise pass when nothing is missing (as in
    almost every window; the caller's ``validate_batch`` copies the frame anyway)."""
    absent = np.zeros(len(frame), dtype=bool)
    for column in columns:
        absent |= missing_mask(frame[column])  # as ``Series.isna``, on the array: cheaper
    return frame[~absent] if absent.any() else frame


def check(policy: Policy, source: Source, champion: Champion, now: datetime) -> CheckResult:
    """Read the window ending at ``now``, measure drift and data quality, and the metric.

    Bad columns (wrong type, no values, too few values) get a per-column ``not_tested`` status
    and quality flags instead of failing the check; when the model cannot score the window (a
    feature of the wrong type) prediction drift and the metric are left out and
    ``data_problem`` says why. Raises ``DataError`` (the source cannot be read) or
    ``EmptyWindow`` (too few rows: the check is skipped); the caller records either.
    """
    started = time.perf_counter()
    start = now - policy.monitor.window
    frame = source.read(start, now)
    if len(frame) < policy.monitor.min_rows:
        raise EmptyWindow(
            f"{source.name}: {len(frame)} rows between {start:%Y-%m-%d %H:%M} and"
            f" {now:%Y-%m-%d %H:%M} UTC, fewer than monitor.min_rows={policy.monitor.min_rows}"
        )
    result = CheckResult(
        window_start=start,
        window_end=now,
        rows=len(frame),
        labelled_rows=0,
        features=champion.detector(policy).check(frame),
        quality=champion.quality(policy).check(frame),
        row_times=frame[policy.timestamp] if policy.timestamp in frame.columns else None,
    )
    result.dataset_drift = result.drift_share >= policy.monitor.drift.drift_share
    if champion.trained_until is not None and any(t.new_rows for t in policy.triggers):
        after = source.read(champion.trained_until + timedelta(microseconds=1), now)
        result.new_rows = len(after)
    # The model scores the rows whose features are all present and typed.
    complete = _complete(frame, [c for c in policy.features.all if c in frame.columns])
    try:
        if complete.empty:
            raise DataError(f"{source.name}: no row has all its features present")
        frame = validate_read(complete, policy, source)
    except DataError as exc:
        result.data_problem = f"model outputs not computed: {exc}"
        result.seconds = time.perf_counter() - started
        return result
    if len(frame) < result.rows:
        result.model_rows = len(frame)  # rows with a missing feature left out
    scores = champion.model.predict_score(frame)  # as ``Champion.output``, keeping the scores
    outputs = scores if scores is not None else champion.model.predict(frame)
    result.prediction_drift = champion.output_drift().check(outputs)
    with_labels = labelled(frame, policy)
    result.labelled_rows = len(with_labels)
    result.labelled = with_labels
    if len(with_labels):
        if scores is not None and len(with_labels) < len(frame):
            scores = scores[frame[policy.target].notna().to_numpy()]
        result.metrics = evaluate(
            champion.model,
            with_labels,
            policy.target,
            metric_names(policy),
            policy.promote.costs,
            scores=scores,
        )
    label_signals(policy, champion, frame, result, outputs)
    result.seconds = time.perf_counter() - started
    return result


def label_signals(
    policy: Policy,
    champion: Champion,
    frame: pd.DataFrame,
    result: CheckResult,
    outputs: np.ndarray | None = None,
) -> None:
    """The signals about labels and the joint distribution: the estimated metrics (no labels
    needed), target drift (once enough labels arrived) and multivariate drift (if enabled).
    ``outputs`` are the champion's outputs on ``frame`` when the caller has them already."""
    estimated = estimate(policy, champion, frame, outputs)
    if estimated is not None:
        result.estimated = estimated.values
        result.estimation = estimation(policy, champion, estimated, result)
        if not estimated.reliable:
            log.warning("%s: no estimate without labels: %s", policy.model, estimated.reason)
    target = champion.target_drift(policy)
    labels = result.labelled
    enough = labels is not None and len(labels) >= policy.monitor.target_drift_min_labels
    if target is not None and labels is not None and enough:
        drift = target.check(labels[policy.target])
        result.target_drift = TargetDriftSignal.model_validate(
            {**drift.to_dict(), "rows": len(labels)}
        )
    if policy.monitor.multivariate.enabled:
        result.multivariate = domain_classifier_auc(policy, champion.reference, frame)


def band_confidence(policy: Policy) -> float:
    """The level of the estimates' bands: the highest any ``estimated_metric`` trigger asks
    for (a band at a higher level contains the lower ones'), else ``DEFAULT_CONFIDENCE``."""
    asked = [
        t.estimated_metric.confidence
        for t in policy.triggers
        if t.estimated_metric is not None and t.estimated_metric.confidence is not None
    ]
    return max(asked, default=DEFAULT_CONFIDENCE)


def estimate(
    policy: Policy, champion: Champion, frame: pd.DataFrame, outputs: np.ndarray | None = None
) -> Estimate | None:
    """The champion's metrics on ``frame`` estimated without labels, with bands; None when
    estimation is off or the champion has no estimator. ``outputs`` are the champion's outputs
    on ``frame`` (``Champion.output``) when the caller has them already."""
    estimator = champion.estimator(policy) if policy.monitor.estimate else None
    if estimator is None:
        return None
    names = list(dict.fromkeys([*metric_names(policy), *ESTIMATED[policy.task]]))
    confidence = band_confidence(policy)
    if isinstance(estimator, LossEstimator):
        return estimator.estimate(champion.model, frame, names, confidence, outputs)
    if outputs is not None and len(estimator.classes) == 2 and pd.api.types.is_float_dtype(outputs):
        proba: np.ndarray | None = outputs  # a binary classifier's P(positive)
    else:
        got = class_probabilities(champion.model, frame)
        proba = None if got is None else got[0]
    if proba is None:
        return None
    return estimator.estimate(proba, names, confidence, frame)


def estimation(
    policy: Policy, champion: Champion, estimated: Estimate, result: CheckResult
) -> Estimation:
    """The stored account of an estimate: how it was calibrated, its band and support, and the
    realised value when every row of the window is labelled already."""
    estimator = champion.estimator(policy)
    assert estimator is not None
    rows = estimator.rows if isinstance(estimator, LossEstimator) else estimator.calibrator.rows
    realised = None
    labels = result.labelled
    if labels is not None and len(labels) and len(labels) == (result.model_rows or result.rows):
        names = [n for n in estimated.values if n in METRICS[policy.task]]
        measured = evaluate(champion.model, labels, policy.target, names, policy.promote.costs)
        realised = realised_of(estimated.values, measured)
    return Estimation(
        calibrated_on=estimator.calibrated_on,
        calibration=estimator.method,
        calibration_rows=rows,
        confidence=estimated.confidence,
        lower=estimated.lower or None,
        upper=estimated.upper or None,
        unsupported_share=round(estimated.unsupported_share, 4),
        reliable=estimated.reliable,
        reason=estimated.reason,
        realised=realised,
    )


def realised_of(estimated: dict[str, float], metrics: dict[str, float]) -> dict[str, float] | None:
    """The labelled metrics beside the estimated ones (the finite ones), or None."""
    out = {k: metrics[k] for k in estimated if k in metrics and np.isfinite(metrics[k])}
    return out or None
