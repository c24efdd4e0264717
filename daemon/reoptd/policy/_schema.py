"""The policy file, version 1: one YAML file per model.

Each class is one block of the file; field descriptions are what ``reoptd policy schema`` prints
for editors. Cross-field rules live in ``Policy._check``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from reoptd.policy._units import Duration, Fraction

#: metric name -> True when higher is better
METRICS: dict[str, dict[str, bool]] = {
    "classification": {"accuracy": True, "f1": True, "roc_auc": True},
    "regression": {"rmse": False, "mae": False, "r2": True},
}
DEFAULT_METRIC = {"classification": "f1", "regression": "rmse"}


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Features(_Block):
    numerical: list[str] = Field(default_factory=list, description="numerical feature columns")
    categorical: list[str] = Field(default_factory=list, description="categorical feature columns")

    @property
    def all(self) -> list[str]:
        return [*self.numerical, *self.categorical]


class Source(_Block):
    kind: Literal["files", "demo"] = Field(
        description="files: Parquet/CSV files matching `path`; demo: the built-in demo stream"
    )
    path: str | None = Field(None, description="glob of Parquet or CSV files (kind: files)")
    format: Literal["auto", "parquet", "csv"] = Field(
        "auto", description="file format; auto picks by extension"
    )
    seed: int = Field(7, description="random seed of the demo stream (kind: demo)")

    @model_validator(mode="after")
    def _path_for_files(self) -> Source:
        if self.kind == "files" and not self.path:
            raise ValueError("kind: files needs a `path` (a glob such as data/*.parquet)")
        return self


class Data(_Block):
    production: Source = Field(description="where the rows the model sees in production come from")


class ColumnDrift(_Block):
    method: str | None = Field(None, description="Evidently drift method for this column")
    threshold: float | None = Field(None, description="threshold for that method")


class Drift(_Block):
    method: str | None = Field(
        None, description="Evidently method for numerical columns (None: Evidently's choice)"
    )
    threshold: float | None = Field(None, description="threshold for `method`")
    cat_method: str | None = Field(None, description="Evidently method for categorical columns")
    cat_threshold: float | None = Field(None, description="threshold for `cat_method`")
    per_column: dict[str, ColumnDrift] = Field(
        default_factory=dict, description="method/threshold overrides by column"
    )
    drift_share: Fraction = Field(
        0.5, description="share of drifted features at which the dataset counts as drifted"
    )


class Monitor(_Block):
    every: Duration = Field(timedelta(minutes=15), description="how often a check runs")
    window: Duration = Field(timedelta(days=1), description="rows of the last `window` are checked")
    min_rows: int = Field(50, ge=1, description="fewer rows than this skips the check")
    reference_rows: int = Field(
        5000, ge=10, description="rows of the champion's training data kept as drift reference"
    )
    drift: Drift = Field(default_factory=Drift)


class DriftShareTrigger(_Block):
    above: Fraction = Field(description="fires when the share of drifted features exceeds this")
    for_: int = Field(1, alias="for", ge=1, description="... in this many consecutive checks")


class MetricTrigger(_Block):
    name: str | None = Field(None, description="metric (default: the promotion metric)")
    below: float | None = Field(None, description="fires when the metric falls below this")
    above: float | None = Field(None, description="fires when the metric rises above this")
    min_labels: int = Field(100, ge=1, description="labelled rows needed before it can fire")
    for_: int = Field(1, alias="for", ge=1, description="consecutive checks it must hold")

    @model_validator(mode="after")
    def _one_bound(self) -> MetricTrigger:
        if (self.below is None) == (self.above is None):
            raise ValueError("a metric trigger needs exactly one of `below` or `above`")
        return self


class Trigger(_Block):
    """One entry of `triggers:`; exactly one of its keys is set."""

    drift_share: DriftShareTrigger | None = None
    metric: MetricTrigger | None = None
    max_age: Duration | None = Field(None, description="re-optimize a champion older than this")

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        # Keys written without a value (`- max_age:`) count as absent, not as set.
        if len(self._given()) != 1:
            raise ValueError(
                "each trigger needs exactly one of: drift_share, metric, max_age (with a value)"
            )
        return self

    def _given(self) -> list[str]:
        return [k for k in ("drift_share", "metric", "max_age") if getattr(self, k) is not None]

    @property
    def kind(self) -> str:
        return self._given()[0]


class Guards(_Block):
    cooldown: Duration = Field(timedelta(0), description="minimum time between two runs")
    max_runs_per_day: int | None = Field(None, ge=1, description="runs allowed in any 24 h")


class Train(_Block):
    family: Literal["sklearn"] = Field("sklearn", description="model family")
    estimator: str = Field(description="import path, e.g. sklearn.ensemble.RandomForestClassifier")
    params: dict[str, object] = Field(default_factory=dict, description="estimator parameters")
    window: Duration = Field(timedelta(days=30), description="train on labelled rows this recent")
    min_rows: int = Field(200, ge=10, description="fewer labelled rows than this aborts a run")


class Promote(_Block):
    metric: str | None = Field(None, description="validation metric (default f1 / rmse)")
    min_improvement: float = Field(
        0.0, ge=0, description="challenger must beat the champion by at least this"
    )
    holdout: Fraction = Field(0.2, description="newest share of labelled rows held out")


class Policy(_Block):
    version: Literal[1] = Field(description="policy format version")
    model: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="model name")
    task: Literal["classification", "regression"]
    target: str = Field(description="label column")
    timestamp: str = Field("ts", description="event-time column")
    features: Features
    data: Data
    monitor: Monitor = Field(default_factory=Monitor)
    triggers: list[Trigger] = Field(default_factory=list, description="any of them fires a run")
    guards: Guards = Field(default_factory=Guards)
    pipeline: list[Literal["retrain", "validate"]] = Field(
        default_factory=lambda: ["retrain", "validate"], description="steps of a run, in order"
    )
    train: Train
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

    @model_validator(mode="after")
    def _check(self) -> Policy:
        problems = []
        if not self.features.all:
            problems.append("features: list at least one numerical or categorical column")
        names = self.features.all
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"features: listed twice: {', '.join(dupes)}")
        for col in (self.target, self.timestamp):
            if col in names:
                problems.append(f"features: {col!r} is the target or timestamp column")
        known = METRICS[self.task]
        metrics = [("promote.metric", self.promote.metric)] + [
            (f"triggers.{i}.metric.name", t.metric.name)
            for i, t in enumerate(self.triggers)
            if t.metric
        ]
        for where, metric in metrics:
            if metric is not None and metric not in known:
                problems.append(
                    f"{where}: unknown {self.task} metric {metric!r}; choose one of "
                    + ", ".join(known)
                )
        for column in self.monitor.drift.per_column:
            if column not in names:
                problems.append(f"monitor.drift.per_column: {column!r} is not a feature")
        if "validate" in self.pipeline and "retrain" not in self.pipeline:
            problems.append("pipeline: `validate` needs a `retrain` step before it")
        if problems:
            raise ValueError("; ".join(problems))
        return self
