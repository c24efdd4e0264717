"""The policy file, version 1: one YAML file per model.

Each class is one block of the file; field descriptions are what ``reoptd policy schema`` prints
for editors. Cross-field rules live in ``Policy._check``.

Names and parameters of plugins (model families, steps, compression methods, drift methods,
source kinds) are not listed here: they are validated against the registries of
``reoptd.plugins``, whose built-in modules are imported on the first validation, and the schema
describes whatever is registered when it is printed.
"""

from __future__ import annotations

import difflib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from reoptd.plugins import COMPRESS_METHODS, FAMILIES, SOURCES, STEPS, drift_methods_by_kind
from reoptd.policy._plugin_blocks import Block as _Block
from reoptd.policy._plugin_blocks import PluginBlocks as _PluginBlocks
from reoptd.policy._plugin_blocks import names_schema as _names_schema
from reoptd.policy._plugin_blocks import registered as _registered
from reoptd.policy._sql_fields import SqlFields as _SqlFields
from reoptd.policy._units import Duration, Fraction, Size

#: metric name -> True when higher is better
METRICS: dict[str, dict[str, bool]] = {
    "classification": {
        "accuracy": True,
        "f1": True,
        "roc_auc": True,
        "precision": True,
        "recall": True,
        "average_precision": True,
        "log_loss": False,
        "brier": False,
        "value": True,  # business value per row from promote.costs
    },
    "regression": {"rmse": False, "mae": False, "r2": True, "mape": False},
}
DEFAULT_METRIC = {"classification": "f1", "regression": "rmse"}
#: the budget of a pipeline step whose policy writes none: a runaway step is stopped after it
DEFAULT_STEP_BUDGET = timedelta(hours=1)


class Features(_Block):
    numerical: list[str] = Field(default_factory=list, description="numerical feature columns")
    categorical: list[str] = Field(default_factory=list, description="categorical feature columns")
    text: list[str] = Field(
        default_factory=list,
        description="free-text columns: monitored for drift and data quality only, not model"
        " inputs (the model families take numerical and categorical columns)",
    )

    @property
    def all(self) -> list[str]:
        """The model's input columns."""
        return [*self.numerical, *self.categorical]

    @property
    def monitored(self) -> list[str]:
        """Every column a check watches: the model's inputs, then the text columns."""
        return [*self.all, *self.text]

    def kind(self, column: str) -> str:
        """numerical, categorical or text (a key of ``DRIFT_METHODS``)."""
        if column in self.categorical:
            return "categorical"
        return "text" if column in self.text else "numerical"


class _StreamSpec(_SqlFields):
    """The fields of ``kind: stream`` (NATS JetStream), shared by production and labels."""

    subject: str | None = Field(
        None, description="subject the JSON messages arrive on, one row each (kind: stream)"
    )
    stream: str | None = Field(
        None, description="JetStream stream holding `subject` (kind: stream; found if left out)"
    )
    durable: str | None = Field(
        None,
        description="durable consumer name (kind: stream; default reoptd-<model>-<role>)",
    )
    ack_wait: Duration = Field(
        timedelta(seconds=30),
        description="how long the broker waits for an ack before it redelivers (kind: stream);"
        " after a crash, the next read waits this long for the messages it never acked",
    )
    keep: Duration = Field(
        timedelta(days=90),
        description="rows older than this before a read's end are deleted from the local"
        " window (kind: stream; keep it longer than train.window and monitor spans)",
    )

    def _stream_problems(self, kind: str) -> None:
        if kind == "stream" and not self.subject:
            raise ValueError("kind: stream needs a `subject` (the subject its messages arrive on)")


class Source(_StreamSpec):
    kind: Annotated[str, _registered(SOURCES)] = Field(
        json_schema_extra=_names_schema(SOURCES, "a registered data source kind. ")
    )
    path: str | None = Field(
        None,
        description="glob of Parquet or CSV files (kind: files): a local path or an fsspec URL"
        " such as s3://bucket/predictions/date=*/*.parquet",
    )
    format: Literal["auto", "parquet", "csv"] = Field(
        "auto", description="file format; auto picks by extension"
    )
    seed: int = Field(7, description="random seed of the demo stream (kind: demo)")

    @model_validator(mode="after")
    def _path_for_files(self) -> Source:
        if self.kind == "files" and not self.path:
            raise ValueError("kind: files needs a `path` (a glob such as data/*.parquet)")
        self._stream_problems(self.kind)
        return self


def _takes_labels(kind: Any) -> bool:
    return kind.open_labels is not None


class LabelSource(_StreamSpec):
    """Labels that arrive apart from their predictions and join them on the policy's `id`."""

    kind: Annotated[str, _registered(SOURCES, where=_takes_labels)] = Field(
        json_schema_extra=_names_schema(
            SOURCES, "", lambda p: p.label_description, where=_takes_labels
        )
    )
    path: str | None = Field(
        None,
        description="glob of Parquet or CSV files with the id and target columns (kind: files):"
        " a local path or an fsspec URL such as s3://bucket/labels/date=*/*.parquet",
    )
    format: Literal["auto", "parquet", "csv"] = Field(
        "auto", description="file format; auto picks by extension"
    )
    arrived: str | None = Field(
        None,
        description="column with the time each label arrived; a label is seen only by checks"
        " after it (leave out: a label counts from the moment its file exists; kind: sql needs"
        " it)",
    )

    @model_validator(mode="after")
    def _what_labels_need(self) -> LabelSource:
        if self.kind == "files" and not self.path:
            raise ValueError("kind: files needs a `path` (a glob such as labels/*.parquet)")
        if self.kind == "sql" and not self.arrived:
            raise ValueError(
                "kind: sql needs `arrived`, the column with the time each label arrived (labels"
                " are read incrementally by it)"
            )
        self._stream_problems(self.kind)
        return self


class Data(_Block):
    production: Source = Field(description="where the rows the model sees in production come from")
    labels: LabelSource | None = Field(
        None,
        description="labels that arrive later in their own files, joined to predictions on the"
        " policy's `id` column (needs `id`)",
    )
    label_delay: Duration | None = Field(
        None,
        description="how long a row's label takes to arrive (e.g. 2d); `policy validate` warns"
        " about metric triggers it makes impossible. The demo stream's is 30m",
    )


def _methods_help(schema: dict[str, Any]) -> None:
    methods = drift_methods_by_kind()
    schema["description"] = (
        "Evidently drift method for this column ("
        + "; ".join(f"{kind}: {', '.join(names)}" for kind, names in methods.items())
        + ")"
    )


class ColumnDrift(_Block):
    method: str | None = Field(None, json_schema_extra=_methods_help)
    threshold: float | None = Field(None, description="threshold for that method")


class Drift(_Block):
    method: str | None = Field(
        None, description="Evidently method for numerical columns (None: Evidently's choice)"
    )
    threshold: float | None = Field(None, description="threshold for `method`")
    cat_method: str | None = Field(None, description="Evidently method for categorical columns")
    cat_threshold: float | None = Field(None, description="threshold for `cat_method`")
    text_method: str | None = Field(None, description="Evidently method for text columns")
    text_threshold: float | None = Field(None, description="threshold for `text_method`")
    sample_rows: int | None = Field(
        None,
        ge=100,
        description="test at most this many rows of each side (a fixed random sample): faster on"
        " big windows, but scores then differ from Evidently's report on all rows, and verdicts"
        " near the threshold may too. Off by default",
    )
    per_column: dict[str, ColumnDrift] = Field(
        default_factory=dict, description="method/threshold overrides by column"
    )
    drift_share: Fraction = Field(
        0.5, description="share of drifted features at which the dataset counts as drifted"
    )


class Quality(_Block):
    missing_share: Fraction = Field(
        0.0, description="flag a column with a larger share of missing values"
    )
    out_of_range_share: Fraction = Field(
        0.01,
        description="flag a numerical column with a larger share of values outside the"
        " reference's [min, max] (a fresh sample exceeds it now and then)",
    )
    unseen_share: Fraction = Field(
        0.0, description="flag a categorical column with a larger share of unseen categories"
    )


class Backfill(_Block):
    within: Duration | None = Field(
        timedelta(days=1),
        description="re-score checks this recent when their labels arrive (null: never)",
    )
    max_windows: int = Field(4, ge=1, description="windows re-scored per check at most")


class Multivariate(_Block):
    enabled: bool = Field(False, description="measure multivariate drift on every check")
    threshold: float = Field(
        0.55, gt=0.5, le=1.0, description="cross-validated ROC AUC at or above which it drifted"
    )
    sample_rows: int = Field(
        2000, ge=50, description="rows taken from each side (reference, current) at most"
    )
    folds: int = Field(3, ge=2, le=10, description="cross-validation folds")


class Span(_Block):
    start: datetime = Field(description="first instant of the reference rows (UTC if no zone)")
    end: datetime = Field(description="end of the reference rows (exclusive)")

    @model_validator(mode="after")
    def _ordered(self) -> Span:
        if _aware(self.end) <= _aware(self.start):
            raise ValueError("the reference's `end` must be after its `start`")
        return self


def _aware(when: datetime) -> datetime:
    from datetime import UTC

    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


class FixedReference(_Block):
    """`reference: {fixed: {start: 2026-03-01, end: 2026-03-08}}`: drift against these rows."""

    fixed: Span


class Monitor(_Block):
    every: Duration = Field(
        timedelta(minutes=15), description="how often a check runs (at least 1s)"
    )
    window: Duration = Field(timedelta(days=1), description="rows of the last `window` are checked")
    min_rows: int = Field(50, ge=1, description="fewer rows than this skips the check")
    reference_rows: int = Field(
        5000, ge=10, description="rows of the champion's training data kept as drift reference"
    )
    reference: Literal["training", "previous_window"] | FixedReference = Field(
        "training",
        description="what the checked window is compared with for drift: training (a sample of"
        " the champion's training rows), previous_window (the window just before, so a shift is"
        " flagged while it happens and not for as long as the champion lives), or"
        " {fixed: {start, end}} (production rows of a period you trust)",
    )
    drift: Drift = Field(default_factory=Drift)
    quality: Quality = Field(
        default_factory=Quality,
        description="data quality tolerances (missing values, out-of-range values, unseen"
        " categories); flagged problems are exported, they do not trigger re-optimization",
    )
    backfill: Backfill = Field(
        default_factory=Backfill,
        description="re-score past windows whose labels arrived after they were checked",
    )
    estimate: bool = Field(
        True,
        description="estimate metrics without labels, with a band: accuracy, precision, recall,"
        " f1 and roc_auc of classifiers (binary and multiclass, calibrated on the champion's"
        " held-out rows), mae and rmse of regressors (a model of the loss fitted on them)",
    )
    target_drift_min_labels: int = Field(
        30, ge=1, description="labelled rows a window needs before target drift is measured"
    )
    multivariate: Multivariate = Field(
        default_factory=Multivariate,
        description="domain-classifier drift: can a model tell reference rows from current ones?",
    )


class DriftShareTrigger(_Block):
    above: Fraction = Field(description="fires when the share of drifted features exceeds this")
    for_: int = Field(1, alias="for", ge=1, description="... in this many consecutive checks")


class DriftFeaturesTrigger(_Block):
    features: list[str] = Field(
        min_length=1, description="critical features: fires when any of them drifts"
    )
    for_: int = Field(1, alias="for", ge=1, description="... in this many consecutive checks")


class PredictionDriftTrigger(_Block):
    for_: int = Field(
        1,
        alias="for",
        ge=1,
        description="fires when the champion's predictions drift (vs. its reference) this many"
        " consecutive checks",
    )


class MetricTrigger(_Block):
    name: str | None = Field(None, description="metric (default: the promotion metric)")
    below: float | None = Field(None, description="fires when the metric falls below this")
    above: float | None = Field(None, description="fires when the metric rises above this")
    drop: float | None = Field(
        None,
        gt=0,
        description="fires when the metric is worse than the champion's validation metric by"
        " more than this",
    )
    min_labels: int = Field(100, ge=1, description="labelled rows needed before it can fire")
    for_: int = Field(1, alias="for", ge=1, description="consecutive checks it must hold")

    @model_validator(mode="after")
    def _one_bound(self) -> MetricTrigger:
        given = [b for b in (self.below, self.above, self.drop) if b is not None]
        if len(given) != 1:
            raise ValueError("a metric trigger needs exactly one of `below`, `above` or `drop`")
        return self


def _one_estimated_bound(schema: dict[str, Any]) -> None:
    """Exactly one of `below` and `above`, with a number."""
    schema["oneOf"] = [
        {"required": [bound], "properties": {bound: {"type": "number"}, other: {"type": "null"}}}
        for bound, other in (("below", "above"), ("above", "below"))
    ]


class EstimatedMetricTrigger(_Block):
    model_config = ConfigDict(json_schema_extra=_one_estimated_bound)

    name: str | None = Field(None, description="estimated metric (default: the promotion metric)")
    below: float | None = Field(
        None, description="fires when the estimate (before labels) falls below this"
    )
    above: float | None = Field(
        None,
        description="fires when the estimate rises above this (for lower-is-better metrics:"
        " a regressor's estimated mae or rmse)",
    )
    confidence: float | None = Field(
        None,
        gt=0.5,
        lt=1.0,
        description="fires only when the estimate's band at this confidence (e.g. 0.9) lies"
        " wholly past the floor, so a small, noisy window does not fire it (default: the"
        " estimate alone)",
    )
    for_: int = Field(1, alias="for", ge=1, description="consecutive checks it must hold")

    @model_validator(mode="after")
    def _one_bound(self) -> EstimatedMetricTrigger:
        if (self.below is None) == (self.above is None):
            raise ValueError("an estimated_metric trigger needs exactly one of `below` or `above`")
        return self


class MultivariateDriftTrigger(_Block):
    above: float = Field(
        gt=0.5, le=1.0, description="fires when the domain classifier's ROC AUC exceeds this"
    )
    for_: int = Field(1, alias="for", ge=1, description="... in this many consecutive checks")


class NewRowsTrigger(_Block):
    at_least: int = Field(
        ge=1, description="fires once this many rows arrived after the champion's training data"
    )


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_trigger(expression: str):
    """A crontab line as an APScheduler trigger in UTC, with cron's weekday numbers.

    APScheduler counts weekdays from 0 = Monday; crontab from 0 = Sunday (7 is Sunday too).
    Numbers in the weekday field are turned into names, which both read the same way.
    """
    import re

    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) == 5:
        fields[4] = re.sub(
            r"(?<![/\w])([0-7])(?![\w])", lambda m: _WEEKDAYS[int(m.group(1))], fields[4]
        )
    return CronTrigger.from_crontab(" ".join(fields), timezone="UTC")


def _cron(expression: str) -> str:
    try:
        cron_trigger(expression)
    except ValueError as exc:
        raise ValueError(f"not a cron expression (minute hour day month weekday): {exc}") from None
    return expression


Cron = Annotated[str, AfterValidator(_cron)]

TRIGGER_KINDS = (
    "drift_share",
    "drift_features",
    "prediction_drift",
    "metric",
    "estimated_metric",
    "multivariate_drift",
    "new_rows",
    "max_age",
    "schedule",
)


def _one_trigger_kind(schema: dict[str, Any]) -> None:
    """Exactly one kind with a value; a kind written without one (`- max_age:`) is absent."""
    schema["oneOf"] = [
        {
            "required": [kind],
            "properties": {
                other: {"not": {"type": "null"}} if other == kind else {"type": "null"}
                for other in TRIGGER_KINDS
            },
        }
        for kind in TRIGGER_KINDS
    ]


class Trigger(_Block):
    """One entry of `triggers:`; exactly one of its keys is set."""

    model_config = ConfigDict(json_schema_extra=_one_trigger_kind)

    drift_share: DriftShareTrigger | None = None
    drift_features: DriftFeaturesTrigger | None = None
    prediction_drift: PredictionDriftTrigger | None = None
    metric: MetricTrigger | None = None
    estimated_metric: EstimatedMetricTrigger | None = None
    multivariate_drift: MultivariateDriftTrigger | None = None
    new_rows: NewRowsTrigger | None = None
    max_age: Duration | None = Field(None, description="re-optimize a champion older than this")
    schedule: Cron | None = Field(
        None, description="cron expression in UTC, e.g. '0 3 * * *': re-optimize on schedule"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        # Keys written without a value (`- max_age:`) count as absent, not as set.
        if len(self._given()) != 1:
            raise ValueError(
                "each trigger needs exactly one of: " + ", ".join(TRIGGER_KINDS) + " (with a value)"
            )
        return self

    def _given(self) -> list[str]:
        return [k for k in TRIGGER_KINDS if getattr(self, k) is not None]

    @property
    def kind(self) -> str:
        return self._given()[0]


class Guards(_Block):
    cooldown: Duration = Field(timedelta(0), description="minimum time between two runs")
    max_runs_per_day: int | None = Field(None, ge=1, description="runs allowed in any 24 h")
    max_compute_per_day: Duration | None = Field(
        None, description="re-optimization time allowed in any 24 h (e.g. 2h)"
    )


def _estimator_of_family_schema(schema: dict[str, Any]) -> None:
    """`estimator` is required by a family that trains any estimator (sklearn, the default) and
    limited to the names of a family that trains its own (torch)."""
    rules: list[dict[str, Any]] = []
    for family in FAMILIES.plugins():
        this: dict[str, Any] = {
            "properties": {"family": {"const": family.name}},
            "required": ["family"],
        }
        if family.name == "sklearn":
            this = {"anyOf": [this, {"not": {"required": ["family"]}}]}
        if family.estimators is None:
            then = {"required": ["estimator"], "properties": {"estimator": {"minLength": 1}}}
        else:
            then = {"properties": {"estimator": {"enum": list(family.estimators)}}}
        rules.append({"if": this, "then": then})
    schema["allOf"] = rules


class Train(_Block):
    model_config = ConfigDict(json_schema_extra=_estimator_of_family_schema)

    family: Annotated[str, _registered(FAMILIES)] = Field(
        "sklearn", json_schema_extra=_names_schema(FAMILIES, "model family. ")
    )
    estimator: str = Field(
        "",
        validate_default=True,
        description="import path of a scikit-learn estimator, e.g."
        " sklearn.ensemble.RandomForestClassifier (family sklearn, required), from a module the"
        " operator allows (REOPTD_ALLOWED_ESTIMATOR_MODULES, default sklearn.); family torch:"
        " leave out or write `mlp`",
    )
    params: dict[str, object] = Field(default_factory=dict, description="estimator parameters")
    window: Duration = Field(timedelta(days=30), description="train on labelled rows this recent")
    min_rows: int = Field(200, ge=10, description="fewer labelled rows than this aborts a run")
    warm_start: Literal["auto", "always", "never"] = Field(
        "auto",
        description="start the challenger from the champion: torch, fine-tune its weights (its"
        " preprocessing kept, new categories given fresh zero inputs) at `warm_lr` x lr;"
        " sklearn, continue it on the new window (more boosting iterations or trees with"
        " `warm_start`, or `partial_fit`). auto: train a warm and a from-scratch challenger, the"
        " holdout decides; always: warm only (from scratch when the champion cannot be"
        " continued); never: from scratch only",
    )
    warm_lr: float = Field(
        0.3, gt=0, le=1, description="torch: a warm start's learning rate, as a share of `lr`"
    )
    warm_budget: float = Field(
        0.3,
        gt=0,
        le=1,
        description="a warm start trains at most this share of `epochs` (torch), or adds this"
        " share of boosting iterations or trees (sklearn `max_iter` / `n_estimators`)",
    )

    @field_validator("estimator")
    @classmethod
    def _estimator_of_family(cls, value: str, info: ValidationInfo) -> str:
        name = info.data.get("family")  # absent when the family itself is invalid
        if name is None:
            return value
        family = FAMILIES.get(name)
        if family.estimators is None and not value:
            raise PydanticCustomError("missing", "Field required")
        if family.estimators is not None and value not in family.estimators:
            named = " or ".join(f"`{e}`" for e in family.estimators if e)
            raise ValueError(
                f"family {name} trains its own {family.learner or 'model'}: leave `estimator`"
                f" out or write {named}, not {value!r}"
            )
        return value

    @field_validator("params")
    @classmethod
    def _params_of_family(cls, value: dict[str, object], info: ValidationInfo) -> dict:
        name = info.data.get("family")
        family = None if name is None else FAMILIES.get(name)
        if family is not None and family.params is not None:
            unknown = [k for k in value if k not in family.params]
            if unknown:
                raise ValueError(
                    f"family {name} has no parameter {', '.join(map(repr, unknown))};"
                    " choose from " + ", ".join(family.params)
                )
        return value

    @model_validator(mode="after")
    def _family_check(self) -> Train:
        """The family's own check of the estimator and its parameters (the sklearn family
        refuses any class off the operator's allowlist, and parameters it does not take)."""
        check = FAMILIES.get(self.family).check
        problems = [] if check is None else check(self.estimator, self.params)
        if problems:
            raise ValidationError.from_exception_data(
                "Train",
                [
                    InitErrorDetails(
                        type=PydanticCustomError("value_error", message),
                        loc=tuple(field.split(".", 1)),
                        input=self.params,
                    )
                    for field, message in problems
                ],
            )
        return self

    @property
    def learner(self) -> str:
        """What a run trains, for records and explanations: the estimator or the torch MLP."""
        return FAMILIES.get(self.family).learner or self.estimator


class Param(_Block):
    """One dimension of a search space: exactly one of `float`, `int`, `choice`."""

    float_: tuple[float, float] | None = Field(None, alias="float", description="[low, high]")
    int_: tuple[int, int] | None = Field(None, alias="int", description="[low, high]")
    choice: list[Any] | None = Field(None, min_length=1, description="values to choose from")
    log: bool = Field(False, description="sample on a log scale (float/int)")
    step: float | None = Field(None, gt=0, description="grid step (float/int)")

    @model_validator(mode="after")
    def _one_kind(self) -> Param:
        kinds = [k for k in (self.float_, self.int_, self.choice) if k is not None]
        if len(kinds) != 1:
            raise ValueError("a parameter needs exactly one of `float`, `int` or `choice`")
        bounds = self.float_ or self.int_
        if bounds is not None:
            if bounds[0] > bounds[1]:
                raise ValueError(f"low {bounds[0]} is above high {bounds[1]}")
            if self.log and bounds[0] <= 0:
                raise ValueError("a log-scale range must be positive")
        return self


class Tune(_Block):
    sampler: Literal["grid", "random", "tpe", "gp", "cmaes", "nsga2"] = Field(
        "tpe", description="Optuna sampler; nsga2 also minimizes `tradeoff` (Pareto front)"
    )
    trials: int = Field(30, ge=1, description="trial budget (warm-start trials included)")
    timeout: Duration | None = Field(None, description="wall-clock budget of the study")
    jobs: int = Field(1, ge=1, description="trials run in parallel")
    warm_start: bool = Field(
        True,
        description="enqueue the champion's parameters and the best of earlier studies first",
    )
    seed_history: bool = Field(
        False,
        description="also feed earlier studies' trials (with their old scores) to the sampler"
        " where the space is unchanged; off by default: after a shift the old scores mislead it",
    )
    pruner: Literal["none", "median", "hyperband"] = Field(
        "median", description="stop unpromising trials early (iterative learners)"
    )
    validation: Fraction = Field(
        0.2, description="newest share of the training rows that scores trials"
    )
    tradeoff: Literal["latency", "size"] = Field(
        "latency", description="the second objective of nsga2"
    )
    seed: int | None = Field(0, description="sampler seed (None: random)")
    space: dict[str, Param] = Field(
        default_factory=dict,
        description="parameters to search (default: one per estimator, and one for the torch MLP:"
        " lr, dropout, width, depth)",
    )


#: the augment step's options, and which task or family each applies to
AUGMENT_METHODS: dict[str, str] = {
    "random_over": "classification: random over-sampling of the minority classes",
    "random_under": "classification: random under-sampling of the majority class",
    "smote": "classification: SMOTE (SMOTE-NC with categorical features) synthetic minority rows",
    "noise": "torch: Gaussian noise on the standardized numerical inputs while training",
    "mixup": "torch: mixup of input pairs and their labels while training",
}


class Augment(_Block):
    """The augment step: each option trains one more challenger like the current one; the
    untouched holdout (never augmented) judges them and an option is kept only if it wins."""

    methods: list[Literal["random_over", "random_under", "smote", "noise", "mixup"]] | None = Field(
        None,
        description="options to try (default: every one that applies to the task and model"
        " family). " + "; ".join(f"{k}: {v}" for k, v in AUGMENT_METHODS.items()),
    )
    k_neighbors: int = Field(5, ge=1, description="smote: neighbours a synthetic row lies between")
    noise: float = Field(
        0.1, gt=0, description="noise: standard deviation, in standard deviations of each column"
    )
    mixup: float = Field(
        0.2, gt=0, description="mixup: alpha of the Beta(alpha, alpha) mixing weights"
    )
    seed: int = Field(0, description="seed of the resampling")

    def applicable(self, task: str, family: str) -> list[str]:
        """The methods a run tries: those listed (or all) that apply to ``task`` and ``family``."""
        wanted = self.methods if self.methods is not None else list(AUGMENT_METHODS)
        return [m for m in wanted if not self.problem(m, task, family)]

    @staticmethod
    def problem(method: str, task: str, family: str) -> str:
        """Why ``method`` does not apply to a model (empty: it does)."""
        if method in ("random_over", "random_under", "smote") and task != "classification":
            return f"`{method}` rebalances classes: a classification model only"
        if method in ("noise", "mixup") and family != "torch":
            return f"`{method}` augments while a torch MLP trains: family torch only"
        return ""


def _default_methods() -> list[str]:
    return [m.name for m in COMPRESS_METHODS.plugins() if m.default]


def _method_blocks() -> dict[str, type[BaseModel]]:
    blocks: dict[str, type[BaseModel]] = {}
    for method in COMPRESS_METHODS.plugins():
        if method.config is not None and method.options_key is not None:
            blocks[method.options_key] = method.config
    return blocks


def _methods_schema(schema: dict[str, Any]) -> None:
    methods = sorted(COMPRESS_METHODS.plugins(), key=lambda m: m.order)
    chain = " -> ".join(
        " | ".join(m.name for m in methods if m.order == order)
        for order in dict.fromkeys(m.order for m in methods)
    )
    ends = [m.name for m in methods if m.ends_chain]
    schema["items"]["enum"] = [m.name for m in methods]
    schema["description"] = (
        f"methods to try, alone and chained in the order {chain} (a chain ends with at most one"
        f" of {', '.join(ends)}). " + "; ".join(f"{m.name}: {m.description}" for m in methods)
    )


class Compress(_PluginBlocks):
    """The compress step: build candidates, measure each, keep the best within the metric drop.
    Each method's options (``distill:``, ``prune:`` ...) are declared by the method's plugin."""

    model_config = ConfigDict(json_schema_extra=lambda s, cls: cls._plugin_blocks_schema(s))

    @classmethod
    def plugin_blocks(cls) -> dict[str, type[BaseModel]]:
        return _method_blocks()

    methods: list[Annotated[str, _registered(COMPRESS_METHODS)]] = Field(
        default_factory=_default_methods,
        min_length=1,
        json_schema_extra=_methods_schema,
    )
    max_metric_drop: float = Field(
        0.01,
        ge=0,
        description="a candidate may lose at most this much of the uncompressed model's metric on"
        " validation rows, in the metric's own units (0.01 = one point of accuracy)",
    )
    objective: Literal["latency", "size"] = Field(
        "latency",
        description="latency: the lowest p50 latency at `batch_size`; size: the smallest artifact."
        " A candidate worse than the uncompressed model on it is never chosen",
    )
    batch_size: int = Field(1, ge=1, description="the batch size production predicts at")
    batch_sizes: list[int] = Field(
        default_factory=list,
        description="further batch sizes whose latency is measured and reported",
    )
    threads: int = Field(1, ge=1, description="torch threads while measuring latency")
    timer: Literal["cpu", "wall"] = Field(
        "cpu",
        description="cpu: latency is the predicting thread's CPU time, what the call costs on a"
        " core of its own, undisturbed by other processes (threads: 1 only); wall: elapsed time."
        " Elapsed time is reported either way",
    )
    repetitions: int = Field(
        30, ge=5, description="timed predictions per candidate and batch size (after warm-up)"
    )
    min_speedup: float = Field(
        1.2,
        ge=1.0,
        description="with objective latency, a candidate must be at least this many times faster"
        " (p50) than the uncompressed model, and the 95% confidence intervals of the two medians"
        " must not overlap: smaller wins are timing noise and keep the uncompressed model",
    )
    serving: Literal["auto", "python", "onnx"] = Field(
        "python",
        description="the serving form. python: the family's own (a torch state dict, an sklearn"
        " pickle); auto: every candidate, the uncompressed model included, is also exported to"
        " ONNX (torch via the dynamo exporter, sklearn via skl2onnx; preprocessing as numbers, run"
        " on numpy arrays) and timed under ONNX Runtime, and the fastest form at `batch_size`"
        " wins; onnx: only ONNX forms are chosen (the uncompressed model's must export). An ONNX"
        " form loads without running code",
    )
    serving_tolerance: float = Field(
        1e-4,
        gt=0,
        description="an ONNX form is a candidate only if its outputs equal the Python form's on"
        " the holdout within this: class probabilities (classifiers) or predictions relative to"
        " 1 + |prediction| (regressors), largest difference",
    )

    @model_validator(mode="after")
    def _cpu_timer_one_thread(self) -> Compress:
        if self.timer == "cpu" and self.threads != 1:
            raise ValueError("timer cpu measures one thread: with threads > 1 write timer: wall")
        return self

    @property
    def all_batch_sizes(self) -> list[int]:
        """``batch_size`` first, then the others, each once."""
        return list(dict.fromkeys([self.batch_size, *self.batch_sizes]))


class Step(_Block):
    """A pipeline step with its budget. In YAML: `retrain` or `{retrain: {budget: 10m}}`."""

    name: str = Field(json_schema_extra=_names_schema(STEPS, "a pipeline step. "))
    budget: Duration | None = Field(
        None,
        description="the step is stopped and the run fails (champion kept) if it takes longer"
        " than this (default 1h)",
    )

    @property
    def limit(self) -> timedelta:
        """The budget in force: the one written, or ``DEFAULT_STEP_BUDGET``."""
        return self.budget if self.budget is not None else DEFAULT_STEP_BUDGET


class Rollback(_Block):
    drop: float = Field(
        gt=0,
        description="roll back when the new champion's live metric is worse than its"
        " predecessor's on the same new labelled rows by more than this",
    )
    within: Duration = Field(timedelta(days=1), description="how long after a promotion to watch")
    min_labels: int = Field(100, ge=1, description="labelled rows needed before judging")


class Costs(_Block):
    """What each outcome of a binary classifier's decision is worth (negative: a cost)."""

    tp: float = Field(0.0, description="value of a true positive (e.g. a churner kept: 50)")
    fp: float = Field(0.0, description="value of a false positive (e.g. a needless offer: -5)")
    fn: float = Field(0.0, description="value of a false negative (e.g. a churner lost: -50)")
    tn: float = Field(0.0, description="value of a true negative")


class Promote(_Block):
    metric: str | None = Field(
        None,
        description="validation metric (default f1 / rmse); classification: accuracy, f1,"
        " precision, recall, roc_auc, average_precision, log_loss, brier, value (needs"
        " `costs`); regression: rmse, mae, mape, r2",
    )
    costs: Costs | None = Field(
        None,
        description="the metric `value`: mean value per row of the decisions, from the value of"
        " each true/false positive/negative, e.g. {tp: 50, fp: -5, fn: -50, tn: 0}",
    )
    min_improvement: float = Field(
        0.0, ge=0, description="challenger must beat the champion by at least this"
    )
    holdout: Fraction = Field(0.2, description="newest share of labelled rows held out")
    mode: Literal["auto", "manual", "shadow"] = Field(
        "auto",
        description="auto: promote a winning challenger at once; manual: it waits for"
        " `reoptd models approve`; shadow: it first scores live rows beside the champion",
    )
    shadow_checks: int = Field(
        3,
        ge=1,
        description="shadow mode: checks with labels the challenger must win before promotion",
    )
    max_latency: Duration | None = Field(
        None, description="reject a challenger slower than this per row at batch size 1 (5ms)"
    )
    max_size: Size | None = Field(None, description="reject a challenger artifact larger (50MB)")
    rollback: Rollback | None = Field(None, description="post-promotion guard")


class Policy(_Block):
    version: Literal[1] = Field(description="policy format version")
    model: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="model name")
    task: Literal["classification", "regression"]
    target: str = Field(description="label column")
    timestamp: str = Field("ts", description="event-time column")
    id: str | None = Field(
        None,
        description="row id column (a request id): labels that arrive later join their"
        " predictions on it",
    )
    features: Features
    data: Data
    monitor: Monitor = Field(default_factory=Monitor)
    triggers: list[Trigger] = Field(
        default_factory=list,
        description="what starts a re-optimization; a list means any of them, or write"
        " {all: [...]} / {any: [...]}",
        json_schema_extra=lambda schema: _triggers_schema(schema),
    )
    combine: Literal["any", "all"] = Field(
        "any", description="fire when any trigger fires, or only when all of them do"
    )
    guards: Guards = Field(default_factory=Guards)
    pipeline: list[Step] = Field(
        default_factory=lambda: [Step(name="retrain"), Step(name="validate")],
        description="steps of a run, in order: names, or {name: {budget: 10m}}",
        json_schema_extra=lambda schema: _pipeline_schema(schema),
    )
    train: Train
    tune: Tune = Field(default_factory=Tune, description="the tune step, if the pipeline has it")
    compress: Compress = Field(
        default_factory=Compress, description="the compress step, if the pipeline has it"
    )
    augment: Augment = Field(
        default_factory=Augment, description="the augment step, if the pipeline has it"
    )
    promote: Promote = Field(default_factory=Promote)

    _source: Path | None = PrivateAttr(None)

    @property
    def source(self) -> Path | None:
        """The file this policy was loaded from, if any."""
        return self._source

    @property
    def metric(self) -> str:
        return self.promote.metric or DEFAULT_METRIC[self.task]

    def higher_is_better(self, metric: str | None = None) -> bool:
        return METRICS[self.task][metric or self.metric]

    @model_validator(mode="before")
    @classmethod
    def _friendly_forms(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        triggers = data.get("triggers")
        if (
            isinstance(triggers, dict)
            and len(triggers) == 1
            and next(iter(triggers))
            in (
                "any",
                "all",
            )
        ):
            ((mode, rules),) = triggers.items()
            data["triggers"], data["combine"] = rules, mode
        pipeline = data.get("pipeline")
        if isinstance(pipeline, list):
            data["pipeline"] = [_step(entry) for entry in pipeline]
        return data

    @property
    def steps(self) -> list[str]:
        return [s.name for s in self.pipeline]

    @model_validator(mode="after")
    def _check(self) -> Policy:
        problems = []
        if not self.features.all:
            problems.append("features: list at least one numerical or categorical column")
        names = self.features.monitored
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"features: listed twice: {', '.join(dupes)}")
        for col in (self.target, self.timestamp, self.id):
            if col is not None and col in names:
                problems.append(f"features: {col!r} is the target, timestamp or id column")
        if self.monitor.every < timedelta(seconds=1):
            problems.append("monitor.every: checks cannot run more often than every 1s")
        known = METRICS[self.task]
        metrics = [("promote.metric", self.promote.metric)]
        for i, t in enumerate(self.triggers):
            if t.metric is not None:
                metrics.append((f"triggers.{i}.metric.name", t.metric.name))
            if t.estimated_metric is not None:
                where = f"triggers.{i}.estimated_metric.name"
                metrics.append((where, t.estimated_metric.name))
                name = t.estimated_metric.name or self.metric
                below = t.estimated_metric.below is not None
                if name in known and known[name] != below:
                    bound, other = ("below", "above") if below else ("above", "below")
                    kind = "lower" if below else "higher"
                    problems.append(
                        f"{where}: estimated_metric.{bound} fires when {name!r} passes the bound"
                        f" {bound}; {name!r} is {kind}-is-better, so it would fire when the model"
                        f" improves (use `{other}`)"
                    )
        for where, metric in metrics:
            if metric == "value" and self.promote.costs is None and self.task == "classification":
                problems.append(f"{where}: metric 'value' needs promote.costs {{tp, fp, fn, tn}}")
            if metric is not None and metric not in known:
                problems.append(
                    f"{where}: unknown {self.task} metric {metric!r}; choose one of "
                    + ", ".join(known)
                )
        for column in self.monitor.drift.per_column:
            if column not in self.features.monitored:
                problems.append(f"monitor.drift.per_column: {column!r} is not a feature")
        problems.extend(self._drift_method_problems())
        steps = self.steps
        step_names = STEPS.names()
        for name in steps:
            if name not in step_names:
                hint = STEPS.suggest(name)
                close = f" — did you mean `{hint}`?" if hint else ""
                problems.append(
                    f"pipeline: unknown step `{name}`{close}; choose from " + ", ".join(step_names)
                )
        family = FAMILIES.get(self.train.family)
        if family.params is not None:
            unknown = [k for k in self.tune.space if k not in family.params]
            if unknown:
                problems.append(
                    f"tune.space: family {family.name} has no parameter"
                    f" {', '.join(map(repr, unknown))}; choose from " + ", ".join(family.params)
                )
        if family.check is not None and self.tune.space:
            space = dict.fromkeys(self.tune.space)
            for field, message in family.check(self.train.estimator, space):
                if field.startswith("params."):  # (the estimator's own problem: train.estimator)
                    problems.append(f"tune.space.{field.removeprefix('params.')}: {message}")
        if len(set(steps)) != len(steps):
            problems.append("pipeline: a step is listed twice")
        if "retrain" not in steps and not ("compress" in steps and set(steps) <= _COMPRESS_ONLY):
            problems.append(
                "pipeline: a run needs a `retrain` step (or only `compress` and `validate`, which"
                " compress the champion)"
            )
        elif (
            "validate" in steps
            and "retrain" in steps
            and steps.index("validate") < steps.index("retrain")
        ):
            problems.append("pipeline: `validate` must come after `retrain`")
        for name in dict.fromkeys(steps):
            step = STEPS.get(name) if name in step_names else None
            if step is not None and step.check is not None:
                problems.extend(step.check(self))
        for i, trigger in enumerate(self.triggers):
            if trigger.drift_features is not None:
                unknown = [f for f in trigger.drift_features.features if f not in names]
                if unknown:
                    problems.append(
                        f"triggers.{i}.drift_features.features: not features: {', '.join(unknown)}"
                    )
        source_check = SOURCES.get(self.data.production.kind).check
        if source_check is not None:
            problems.extend(source_check(self))
        if self.data.labels is not None and self.id is None:
            problems.append(
                "data.labels: labels join their predictions on the row id: set `id` (e.g."
                " id: request_id)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _drift_method_problems(self) -> list[str]:
        """Drift methods must be Evidently's, for the column type they are used on."""
        spec = self.monitor.drift
        uses = [
            ("monitor.drift.method", spec.method, "numerical"),
            ("monitor.drift.cat_method", spec.cat_method, "categorical"),
            ("monitor.drift.text_method", spec.text_method, "text"),
        ]
        for column, override in spec.per_column.items():
            if column in self.features.monitored:
                kind = self.features.kind(column)
                uses.append((f"monitor.drift.per_column.{column}.method", override.method, kind))
        problems = []
        methods = drift_methods_by_kind()
        for where, method, kind in uses:
            if method is None or method in methods[kind]:
                continue
            other = [k for k, names in methods.items() if method in names]
            if other:
                problems.append(
                    f"{where}: {method!r} is a method for {' and '.join(other)} columns, not"
                    f" {kind}; choose from " + ", ".join(methods[kind])
                )
                continue
            close = difflib.get_close_matches(method, methods[kind], n=1, cutoff=0.5)
            hint = f" — did you mean `{close[0]}`?" if close else ""
            problems.append(
                f"{where}: unknown {kind} drift method {method!r}{hint} Evidently's {kind}"
                " methods: " + ", ".join(methods[kind])
            )
        return problems


_COMPRESS_ONLY = {"compress", "validate"}


# -- the JSON Schema of the short forms ``Policy._friendly_forms`` accepts ----------------------


def _triggers_schema(schema: dict[str, Any]) -> None:
    """`triggers:` is a list of rules, or `{any: [...]}` / `{all: [...]}` holding one."""
    rules = {key: schema.pop(key) for key in ("type", "items") if key in schema}
    schema["anyOf"] = [
        rules,
        {
            "type": "object",
            "properties": {"any": rules, "all": rules},
            "additionalProperties": False,
            "minProperties": 1,
            "maxProperties": 1,
        },
    ]


def _pipeline_schema(schema: dict[str, Any]) -> None:
    """Each pipeline entry: `retrain`, `{retrain: null | 10m | {budget: 10m}}`, or the long form
    `{name: retrain, budget: 10m}` (see ``_step``)."""
    names = {"enum": STEPS.names()}
    budget = TypeAdapter(Duration).json_schema()
    options = {
        "anyOf": [
            {"type": "null"},
            budget,
            {
                "type": "object",
                "properties": {"budget": {"anyOf": [budget, {"type": "null"}]}},
                "additionalProperties": False,
            },
        ]
    }
    schema["items"] = {
        "anyOf": [
            {"type": "string", **names},
            schema["items"],
            {
                "type": "object",
                "propertyNames": names,
                "minProperties": 1,
                "maxProperties": 1,
                "additionalProperties": options,
            },
        ]
    }


def _step(entry: Any) -> Any:
    """`retrain` -> {name: retrain}; `{retrain: {budget: 10m}}` -> {name: retrain, budget: 10m}."""
    if isinstance(entry, str):
        return {"name": entry}
    if isinstance(entry, dict) and len(entry) == 1 and "name" not in entry:
        ((name, options),) = entry.items()
        if options is None:
            return {"name": name}
        if not isinstance(options, dict):  # `{retrain: 10m}`: the budget, written short
            return {"name": name, "budget": options}
        return {"name": name, **options}
    return entry
