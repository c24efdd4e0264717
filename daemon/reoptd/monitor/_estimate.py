"""Classification performance estimated without labels, in the spirit of NannyML's CBPE.

A classifier's class probabilities, once calibrated, are the chances that the row belongs to
each class. Under covariate shift (the inputs move, P(y | x) stays) that stays true on new rows,
so the expected confusion matrix of a window follows from the probabilities alone: the row
predicted as class k adds p_j to cell (true j, predicted k). For a binary model:

    E[TP] = sum(p_i over predicted positives)      E[FP] = sum(1 - p_i over predicted positives)
    E[FN] = sum(p_i over predicted negatives)      E[TN] = sum(1 - p_i over predicted negatives)

and accuracy, precision, recall, f1 and ROC AUC are read from it (for more than two classes:
macro averages, as the labelled metric computes them, plus ``f1_weighted``; ROC AUC one-vs-rest).
A multiclass model is calibrated one class at a time (one-vs-rest), then each row's
probabilities are scaled back to sum to one.

**The band.** Each estimate carries a band at ``confidence`` (0.9 by default): the range the
realised metric of *this* window falls in. It is simulated: each replicate draws the window's
labels from calibrated probabilities (the sampling error of a window of this size) and computes
the metric those labels would give; the band is the replicates' quantiles. The probabilities
differ from replicate to replicate by what a holdout of this size leaves unknown about the
calibration (``RESAMPLES`` bootstrap resamples of it, the replicates taking them in turn):

* *which map*: the calibration methods whose cross-validated losses lie within one standard
  error of the best (``Calibrator.tied``) are equally supported, and the point estimate takes the
  simplest only by convention; the resamples take the tied methods in turn, each centred on
  that method's fit to the whole holdout;
* *the map's parameters*: each resample adds the departure of its refit from the whole-holdout
  fit. Leaving the score as it is (``none``) has no parameters, but a holdout that cannot tell it
  from Platt scaling cannot rule out the calibration error a Platt fit on it would make either,
  so ``none`` borrows the resampled Platt fits' departures (``Calibrator.reference``).

Without these the band of a champion whose scores need no calibration held only the window's
sampling error: the 4-class bench's champion (``none`` for every class) over-estimated its
accuracy by 0.003 to 0.015 per quarter of its covariate-shift stream, while its 5,000-row
holdout knows its calibration in the large only to +-0.0064 (a bootstrap standard error), and
its band held the realised accuracy in 83 of 100 chunks. This error
does not shrink with the window: a band over thousands of rows is at least as wide as the
calibration's own error.

Under concept drift (P(y | x) changes) no label-free estimate can follow the change; that is
what target drift and the labelled metric (with backfill) are for. Where the window's inputs
leave the holdout's range, the estimate is declared unreliable instead (``_support``).

Calibration is fitted once per champion on labelled rows the champion did not train on: the
holdout slice of its run, stored beside its drift reference. Calibrating on training rows would
inherit the model's over-confidence on them and over-estimate accuracy; they are used only for
versions registered before holdout rows were kept, and the estimate says so (``calibrated_on``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from reoptd.monitor._support import Estimate, Support

if TYPE_CHECKING:
    from reoptd.models import Model

#: labelled rows calibration needs, and the count from which isotonic regression is a candidate
MIN_CALIBRATION_ROWS = 50
ISOTONIC_ROWS = 1000
#: metrics this module can estimate (``f1_weighted``: multiclass only)
ESTIMABLE = ("accuracy", "f1", "precision", "recall", "roc_auc", "f1_weighted")
#: calibrations refitted on bootstrap resamples of the holdout, and replicates of a band
RESAMPLES = 20
REPLICATES = 500


@dataclass
class Calibrator:
    """Maps a raw positive-class score to a calibrated probability.

    Three candidates, and the simplest whose cross-validated log loss on the calibration rows is
    within one standard error of the lowest wins (the others within it are kept as ``tied``, for
    the band): the score as it is (a well-calibrated model needs nothing, and refitting would only
    add noise), Platt scaling (a logistic fit on the score's logit: two parameters, stable on a
    few hundred rows) and, from ``ISOTONIC_ROWS`` rows, isotonic regression (no parametric shape,
    but it overfits small samples).
    """

    method: str
    rows: int
    #: the methods the cross-validation could not tell apart (within one standard error of the
    #: best), simplest first: ``method`` is the first
    tied: tuple[str, ...] = ()
    _platt: LogisticRegression | None = None
    _isotonic: IsotonicRegression | None = None

    @classmethod
    def fit(cls, scores: np.ndarray, positive: np.ndarray, *, folds: int = 5) -> Calibrator:
        scores = np.asarray(scores, dtype=float)
        positive = np.asarray(positive, dtype=int)
        folds = min(folds, int(np.bincount(positive, minlength=2).min()))
        if folds < 2:  # (a class this rare in the holdout: its score as it is)
            return cls("none", len(scores), ("none",))
        # simplest first: the one-standard-error rule picks the simplest candidate whose loss is
        # within one standard error of the best, so noise does not buy a needless refit
        methods = ["none", "platt"] + (["isotonic"] if len(scores) >= ISOTONIC_ROWS else [])
        losses: dict[str, list[float]] = {m: [] for m in methods}
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
        for train, test in splitter.split(scores.reshape(-1, 1), positive):
            for method in methods:
                fitted = cls._fit(method, scores[train], positive[train])
                loss = log_loss(positive[test], fitted(scores[test]), labels=[0, 1])
                losses[method].append(float(loss))
        means = {m: float(np.mean(v)) for m, v in losses.items()}
        best = min(methods, key=lambda m: means[m])
        error = float(np.std(losses[best], ddof=1) / np.sqrt(folds))
        tied = tuple(m for m in methods if means[m] <= means[best] + error)
        fitted = cls._fit(tied[0], scores, positive)
        fitted.tied = tied
        return fitted

    @classmethod
    def _fit(cls, method: str, scores: np.ndarray, positive: np.ndarray) -> Calibrator:
        if method == "isotonic":
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            iso.fit(scores, positive)
            return cls(method, len(scores), _isotonic=iso)
        if method == "platt":
            platt = LogisticRegression(C=1e4)
            platt.fit(_logit(scores).reshape(-1, 1), positive)
            return cls(method, len(scores), _platt=platt)
        return cls("none", len(scores), ("none",))

    def candidates(self, scores: np.ndarray, positive: np.ndarray) -> list[Calibrator]:
        """This calibration and the other methods its cross-validation could not tell from it
        (``tied``), each fitted on the same rows: the choice the band must not take for sure."""
        scores, positive = np.asarray(scores, float), np.asarray(positive, int)
        return [
            self if m == self.method else self._fit(m, scores, positive)
            for m in self.tied or (self.method,)
        ]

    def reference(self, scores: np.ndarray, positive: np.ndarray) -> Calibrator:
        """The fitted map whose refits on bootstrap resamples stand for this calibration's own
        error: itself, or for ``none`` a Platt fit on the same rows (leaving the score as it is
        has no parameters to resample, but it is no surer than the simplest map the holdout could
        have fitted instead)."""
        if self.method != "none" or len(np.unique(positive)) < 2:
            return self
        return self._fit("platt", np.asarray(scores, float), np.asarray(positive, int))

    def refit(self, scores: np.ndarray, positive: np.ndarray) -> Calibrator:
        """The same method fitted on other rows (a bootstrap resample); itself when those rows
        hold one class only."""
        if self.method == "none" or len(np.unique(positive)) < 2:
            return self
        return self._fit(self.method, np.asarray(scores, float), np.asarray(positive, int))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=float)
        if self._isotonic is not None:
            # keep probabilities off 0 and 1 so a log loss stays finite
            return np.clip(self._isotonic.predict(scores), 1e-6, 1 - 1e-6)
        if self._platt is not None:
            return self._platt.predict_proba(_logit(scores).reshape(-1, 1))[:, 1]
        return np.clip(scores, 1e-6, 1 - 1e-6)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def expected_metrics(
    probability: np.ndarray, predicted_positive: np.ndarray, names: list[str] | tuple[str, ...]
) -> dict[str, float]:
    """Expected ``names`` (of ``ESTIMABLE``) from calibrated P(positive) and the predictions."""
    p = np.asarray(probability, dtype=float)
    hat = np.asarray(predicted_positive, dtype=bool)
    if len(p) == 0:
        return {}
    both = np.column_stack([1 - p, p])
    return _expected(both, hat.astype(int), both, names)


def _expected(
    probability: np.ndarray, predicted: np.ndarray, ranks: np.ndarray, names: Sequence[str]
) -> dict[str, float]:
    """Metrics of the expected confusion matrix of calibrated ``probability`` (rows x classes)
    and ``predicted`` class indices; ROC AUC ranks rows by ``ranks`` (the model's own scores)."""
    k = probability.shape[1]
    confusion = np.zeros((k, k))
    for j in range(k):  # column j: the rows predicted as class j
        confusion[:, j] = probability[predicted == j].sum(axis=0)
    out = _from_confusion(confusion, names)
    if "roc_auc" in names:
        classes = [1] if k == 2 else range(k)
        aucs = []
        for c in classes:
            p = probability[:, c]
            if p.sum() <= 0 or (1 - p).sum() <= 0:
                continue
            # Each row counts as a positive with weight p and as a negative with weight 1 - p:
            # the AUC of the scores against those expected labels.
            labels = np.r_[np.ones(len(p)), np.zeros(len(p))]
            score = np.r_[ranks[:, c], ranks[:, c]]
            aucs.append(roc_auc_score(labels, score, sample_weight=np.r_[p, 1 - p]))
        if aucs:
            out["roc_auc"] = float(np.mean(aucs))
    return out


def _from_confusion(confusion: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Accuracy, precision, recall and f1 of a confusion matrix (true x predicted): of the
    positive class for two classes, macro averages (``f1_weighted``: by support) for more."""
    total = confusion.sum()
    tp = np.diag(confusion)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    binary = len(tp) == 2
    support = tp + fn
    # (as sklearn's macro average: over the classes that occur, truly or as predictions)
    present = (support + tp + fp) > 0
    values = {
        "accuracy": float(tp.sum() / total) if total > 0 else 0.0,
        "precision": float(precision[1] if binary else precision[present].mean()),
        "recall": float(recall[1] if binary else recall[present].mean()),
        "f1": float(f1[1] if binary else f1[present].mean()),
    }
    if not binary and total > 0:
        values["f1_weighted"] = float((f1 * support).sum() / total)
    return {n: v for n, v in values.items() if n in names}


class PerformanceEstimator:
    """Estimates a classifier's metrics on unlabelled rows; built once per champion.

    ``classes`` are the model's classes in the order of its probabilities (for a binary model
    the second is the positive class its score is the probability of); ``calibrators`` has one
    calibration per class (one only for a binary model: of the positive class).
    """

    def __init__(
        self,
        classes: list[object],
        calibrators: list[Calibrator],
        calibrated_on: str,
        *,
        resampled: list[list[Calibrator]] | None = None,
        references: list[list[Calibrator]] | None = None,
        centres: list[list[Calibrator]] | None = None,
        support: Support | None = None,
    ) -> None:
        self.classes = classes
        self.calibrators = calibrators
        self.calibrated_on = calibrated_on
        self.resampled = resampled or []
        # per resample: the whole-holdout maps it was refitted from (Platt fits for ``none``),
        # and the tied method's whole-holdout maps it is centred on (see the module's doc)
        self.references = references or [calibrators] * len(self.resampled)
        self.centres = centres or [calibrators] * len(self.resampled)
        self.support = support

    @property
    def positive(self) -> object:
        return self.classes[-1]

    @property
    def calibrator(self) -> Calibrator:
        """The (first) calibration: of the positive class for a binary model."""
        return self.calibrators[0]

    @property
    def method(self) -> str:
        """The calibration methods chosen, e.g. ``platt`` or ``platt, isotonic`` (per class)."""
        return ", ".join(dict.fromkeys(c.method for c in self.calibrators))

    @classmethod
    def build(
        cls,
        model: Model,
        rows: pd.DataFrame,
        target: str,
        calibrated_on: str,
        support: Support | None = None,
    ) -> PerformanceEstimator | None:
        """Calibrate ``model`` on the labelled ``rows``; None when they cannot support it (too
        few, one class only, or a model without class probabilities)."""
        rows = rows[rows[target].notna()]
        if len(rows) < MIN_CALIBRATION_ROWS or rows[target].nunique() < 2:
            return None
        got = class_probabilities(model, rows)
        if got is None:
            return None
        proba, classes = got
        index = {c: i for i, c in enumerate(classes)}
        truth = rows[target].map(index)
        known = truth.notna().to_numpy()  # (labels the model never saw cannot be calibrated)
        proba, y = proba[known], truth[known].to_numpy(dtype=int)
        return cls.from_probabilities(classes, proba, y, calibrated_on, support)

    @classmethod
    def from_probabilities(
        cls,
        classes: list[object],
        proba: np.ndarray,
        y: np.ndarray,
        calibrated_on: str,
        support: Support | None = None,
    ) -> PerformanceEstimator:
        """Calibrate on a model's class probabilities (rows x ``classes``) and the true class
        indices ``y`` of labelled rows; with the bootstrap refits the band needs."""
        columns = [1] if len(classes) == 2 else list(range(len(classes)))
        calibrators = [Calibrator.fit(proba[:, c], y == c) for c in columns]
        # per class: each tied method's map on the whole holdout, and the map its error is
        # resampled from (see the module's doc on the band)
        candidates = [
            [(f, f.reference(proba[:, c], y == c)) for f in cal.candidates(proba[:, c], y == c)]
            for c, cal in zip(columns, calibrators, strict=True)
        ]
        rng = np.random.default_rng(0)
        resampled, centres, references = [], [], []
        for b in range(RESAMPLES):
            pick = rng.integers(0, len(y), len(y))
            # (the tied methods in turn: resample b takes the (b mod n)-th of each class's n)
            chosen = [cands[b % len(cands)] for cands in candidates]
            centres.append([full for full, _ in chosen])
            references.append([ref for _, ref in chosen])
            resampled.append(
                [
                    ref.refit(proba[pick, c], y[pick] == c)
                    for c, (_, ref) in zip(columns, chosen, strict=True)
                ]
            )
        return cls(
            classes,
            calibrators,
            calibrated_on,
            resampled=resampled,
            references=references,
            centres=centres,
            support=support,
        )

    def calibrate(
        self, proba: np.ndarray, calibrators: list[Calibrator] | None = None
    ) -> np.ndarray:
        """Calibrated class probabilities (rows x classes) from the model's."""
        calibrators = calibrators or self.calibrators
        if len(self.classes) == 2:
            p = calibrators[0](proba[:, 1])
            return np.column_stack([1 - p, p])
        out = np.column_stack([cal(proba[:, c]) for c, cal in enumerate(calibrators)])
        return out / out.sum(axis=1, keepdims=True)

    def estimate(
        self,
        proba: np.ndarray,
        names: Sequence[str],
        confidence: float = 0.9,
        frame: pd.DataFrame | None = None,
    ) -> Estimate:
        """Expected metrics of a window from the model's class probabilities on it (for a
        binary model, its positive-class scores will do), with their bands.

        The model predicts the class of highest probability (ties to the first, as sklearn and
        torch do), so the predictions need no second pass over the window. ``frame`` (the
        window's rows) is checked against the holdout's support when given."""
        proba = np.asarray(proba, dtype=float)
        if proba.ndim == 1:
            proba = np.column_stack([1 - proba, proba])
        wanted = [n for n in names if n in ESTIMABLE]
        if len(self.classes) == 2:
            wanted = [n for n in wanted if n != "f1_weighted"]
        outside = 0.0
        if self.support is not None and frame is not None:
            outside = self.support.outside(frame)
        estimate = Estimate(confidence=confidence, unsupported_share=outside)
        if not estimate.reliable or len(proba) == 0:
            return estimate
        predicted = proba.argmax(axis=1)
        estimate.values = _expected(self.calibrate(proba), predicted, proba, wanted)
        estimate.lower, estimate.upper = self._band(proba, predicted, wanted, confidence)
        return estimate

    def _band(
        self, proba: np.ndarray, predicted: np.ndarray, names: list[str], confidence: float
    ) -> tuple[dict[str, float], dict[str, float]]:
        """The ``confidence`` band of each metric: quantiles of the metric of labels drawn from
        the probabilities of the resampled calibrations (see the module's doc)."""
        k = proba.shape[1]
        rng = np.random.default_rng(len(proba))
        # each resample's calibration where this window's rows are: its tied method's whole-holdout
        # map plus its refit's departure from the map it was refitted from
        # (the centres and references repeat across resamples: each calibrated once)
        memo: dict[tuple[int, ...], np.ndarray] = {}

        def once(calibrators: list[Calibrator]) -> np.ndarray:
            key = tuple(map(id, calibrators))
            if key not in memo:
                memo[key] = self.calibrate(proba, calibrators)
            return memo[key]

        calibrated = []
        for cal, ref, centre in zip(self.resampled, self.references, self.centres, strict=True):
            moved = once(centre) + self.calibrate(proba, cal) - once(ref)
            moved = np.clip(moved, 1e-6, 1.0)
            calibrated.append(moved / moved.sum(axis=1, keepdims=True))
        if not calibrated:
            calibrated = [self.calibrate(proba)]
        ranks = _ranks(proba) if "roc_auc" in names else None
        draws: dict[str, list[float]] = {n: [] for n in names}
        # all replicates' labels at once (the same random stream as drawing them one at a time)
        cumulative = np.stack(calibrated).cumsum(axis=2)[np.arange(REPLICATES) % len(calibrated)]
        u = rng.random((REPLICATES, len(proba), 1))
        labels = np.minimum((u > cumulative).sum(axis=2), k - 1)
        cells = (np.arange(REPLICATES)[:, np.newaxis] * k + labels) * k + predicted
        confusions = np.bincount(cells.ravel(), minlength=REPLICATES * k * k)
        for confusion, drawn in zip(
            confusions.reshape(REPLICATES, k, k).astype(float), labels, strict=True
        ):
            for name, value in _from_confusion(confusion, names).items():
                draws[name].append(value)
            if ranks is not None:
                auc = _rank_auc(ranks, drawn, k)
                if auc is not None:
                    draws["roc_auc"].append(auc)
        tail = (1 - confidence) / 2
        lower = {n: float(np.quantile(v, tail)) for n, v in draws.items() if v}
        upper = {n: float(np.quantile(v, 1 - tail)) for n, v in draws.items() if v}
        return lower, upper


def _ranks(proba: np.ndarray) -> np.ndarray:
    """Each column's ranks (ties averaged), for ROC AUC by the rank-sum formula."""
    return np.column_stack([rankdata(proba[:, c]) for c in range(proba.shape[1])])


def _rank_auc(ranks: np.ndarray, labels: np.ndarray, k: int) -> float | None:
    """ROC AUC of drawn ``labels`` (the positive class's, or one-vs-rest macro), from ranks."""
    aucs = []
    for c in [1] if k == 2 else range(k):
        positive = labels == c
        n1 = int(positive.sum())
        n0 = len(labels) - n1
        if n1 and n0:
            aucs.append((ranks[positive, c].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    return float(np.mean(aucs)) if aucs else None


def class_probabilities(
    model: Model, frame: pd.DataFrame
) -> tuple[np.ndarray, list[object]] | None:
    """The model's class probabilities on ``frame`` (rows x classes) and its classes, in the
    order of the columns; None for a model without probabilities."""
    pipeline = getattr(model, "pipeline", None)  # a scikit-learn model
    if pipeline is not None:
        if not hasattr(pipeline, "predict_proba") or not hasattr(pipeline, "classes_"):
            return None
        proba = pipeline.predict_proba(frame[model.features])
        return np.asarray(proba, dtype=float), list(pipeline.classes_)
    classes = getattr(model, "classes", None)  # the torch MLP: its softmax
    if not classes:
        return None
    if len(classes) == 2:
        score = model.predict_score(frame)
        if score is None:
            return None
        return np.column_stack([1 - score, score]), list(classes)
    import torch

    # (the torch family has no public multiclass probabilities: its logits, soft-maxed)
    logits = getattr(model, "_outputs")(frame)  # noqa: B009
    return torch.softmax(logits, dim=1).double().numpy(), list(classes)
