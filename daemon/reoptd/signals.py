"""What one check measured beyond drift share and metrics, as one typed model: ``Signals``.

The contract between the stages of a cycle: the monitor fills the measured parts (prediction
drift, data quality, estimation, target and multivariate drift), the cycle adds what it learnt
around the check (backfilled windows, label health, shadow and guard verdicts), the store keeps
it as the JSON column ``checks.signals``, and ``decide``'s check view, the metrics, the API and
``reoptd status`` read it back by attribute.

At the store boundary it is a plain JSON dict: ``Signals.from_json(d)`` / ``signals.to_json()``.
Stored dicts carry ``schema_version``; rows written before it existed (no version) have the
same layout and read as version 1. A newer version than this code knows is refused with a
clear error, never half-read. Unknown keys are kept, so re-saving a row loses nothing.

This module is on the ground floor: it imports nothing from reoptd but ``errors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from reoptd.errors import ReoptdError

#: the layout ``to_json`` writes; bump it (and teach ``from_json`` the old one) on a change
SCHEMA_VERSION = 1

#: a time stored as ``datetime.isoformat()`` (what the rows held before the model was typed)
IsoTime = Annotated[datetime, PlainSerializer(lambda t: t.isoformat(), return_type=str)]


class _Part(BaseModel):
    # Unknown keys (from an older or newer writer) are kept and written back unchanged.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Drift(_Part):
    """One distribution test: Evidently's score and verdict, or why it did not run."""

    score: float | None = None
    drifted: bool = False
    method: str | None = None
    threshold: float | None = None
    status: str = "tested"

    @property
    def tested(self) -> bool:
        return self.status == "tested"


class TargetDrift(Drift):
    """Drift of the labels of the window against the reference's labels."""

    rows: int = 0  # labelled rows tested


class SchemaChanges(_Part):
    missing: list[str] = Field(default_factory=list)
    extra: list[str] = Field(default_factory=list)
    retyped: dict[str, str] = Field(default_factory=dict)  # column -> "number -> text"


class Quality(_Part):
    """One window's data quality."""

    missing_share: dict[str, float] = Field(default_factory=dict)
    out_of_range_share: dict[str, float] = Field(default_factory=dict)
    unseen_share: dict[str, float] = Field(default_factory=dict)
    unseen_examples: dict[str, list[str]] = Field(default_factory=dict)
    changes: SchemaChanges = Field(default_factory=SchemaChanges, alias="schema")
    flagged: list[str] = Field(default_factory=list)  # one line per problem over tolerance


class Estimation(_Part):
    """How the label-free estimates were made, how sure they are, and (once the window's labels
    are in) what the metrics really were."""

    calibrated_on: str  # "holdout" or "training rows"
    calibration: str  # "none", "platt" or "isotonic" (per class, comma-separated), or "dle"
    calibration_rows: int
    confidence: float | None = None  # the level of the band
    lower: dict[str, float] | None = None  # the band of each estimated metric
    upper: dict[str, float] | None = None
    unsupported_share: float | None = None  # window rows outside the holdout's support
    reliable: bool = True  # false: no estimate, the window lies outside the holdout's support
    reason: str | None = None  # why it is unreliable
    realised: dict[str, float] | None = None  # the labelled metrics, set when labels are in

    @model_serializer(mode="wrap")
    def _set_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # (what a row written before bands existed had stays all it has when written back)
        out = {k: v for k, v in handler(self).items() if v is not None}
        if out.get("reliable") is True:
            del out["reliable"]
        return out

    def errors(self, estimated: Mapping[str, float]) -> dict[str, float]:
        """Estimate minus realised value, per metric with both."""
        realised = self.realised or {}
        return {k: v - realised[k] for k, v in estimated.items() if k in realised}


class Multivariate(_Part):
    """The domain classifier's verdict on the joint distribution."""

    auc: float
    drifted: bool
    threshold: float
    rows: int  # rows of each side the classifier saw


class Verdict(_Part):
    """Another version (a shadow challenger, the previous champion) against the champion on
    labelled rows neither trained on."""

    version: int
    metric: str
    value: float  # the other version's metric
    champion: float  # the champion's metric on the same rows
    rows: int
    better: bool  # the other version did better


class GuardVerdict(Verdict):
    drop: float  # how much worse the champion is than its predecessor (positive: worse)


class Backfilled(_Part):
    """One past window the current check re-scored with its late labels."""

    check_id: int
    window_end: IsoTime
    labelled_rows: int
    metrics: dict[str, float] = Field(default_factory=dict)
    estimated: dict[str, float] | None = None  # what the check estimated before the labels
    realised: dict[str, float] | None = None  # ... and those metrics with the labels

    @model_serializer(mode="wrap")
    def _set_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class BackfillRecord(_Part):
    """On a past check: its re-scoring with late labels. ``tried`` is the last attempt; the rest
    is set once labels came (``*_before``: what the check first measured)."""

    tried: IsoTime
    at: IsoTime | None = None
    labelled_rows: int | None = None
    metrics: dict[str, float] | None = None
    labelled_rows_before: int | None = None
    metrics_before: dict[str, float] | None = None

    @model_serializer(mode="wrap")
    def _set_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class Labels(_Part):
    """How a separate label feed joined the predictions: labels matching none, duplicate ids."""

    matched: int = 0
    unmatched: int = 0
    duplicates: int = 0


class Signals(_Part):
    """Everything a check recorded besides drift share, per-feature drift and metrics."""

    schema_version: int = SCHEMA_VERSION
    # measured by the monitor
    prediction_drift: Drift | None = None
    new_rows: int | None = None  # rows that arrived after the champion's training data
    estimated: dict[str, float] = Field(default_factory=dict)  # metrics estimated without labels
    estimation: Estimation | None = None
    quality: Quality | None = None
    data_problem: str | None = None  # why the model's outputs were not computed
    model_rows: int | None = None  # rows the model scored, when some lacked a feature
    target_drift: TargetDrift | None = None
    multivariate: Multivariate | None = None
    # added by the cycle
    backfill: BackfillRecord | None = None  # this check, re-scored later
    backfilled: list[Backfilled] | None = None  # past checks this one re-scored
    labels: Labels | None = None
    shadow: Verdict | None = None
    guard: GuardVerdict | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Signals:
        """Read a stored dict (``None`` or ``{}``: nothing recorded)."""
        data = dict(data or {})
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ReoptdError(
                f"check signals have schema_version {version!r}; this reoptd reads versions up"
                f" to {SCHEMA_VERSION}: upgrade reoptd"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ReoptdError(f"check signals are malformed: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """The dict to store. Parts not measured are left out, except the three every check
        wrote from the start (as null or empty)."""
        out = self.model_dump(mode="json", by_alias=True)
        return {k: v for k, v in out.items() if v is not None or k in _ALWAYS}


_ALWAYS = {"schema_version", "prediction_drift", "new_rows", "estimated"}

__all__ = [
    "SCHEMA_VERSION",
    "BackfillRecord",
    "Backfilled",
    "Drift",
    "Estimation",
    "GuardVerdict",
    "Labels",
    "Multivariate",
    "Quality",
    "SchemaChanges",
    "Signals",
    "TargetDrift",
    "Verdict",
]
