"""Typed check signals: stored rows of every age read, and round-trip without loss."""

from __future__ import annotations

import pytest

from reoptd.errors import ReoptdError
from reoptd.signals import SCHEMA_VERSION, Signals

#: a check's signals as written before they were typed (no schema_version), every part present
LEGACY = {
    "prediction_drift": {
        "score": 0.12,
        "drifted": True,
        "method": "wasserstein",
        "threshold": 0.1,
        "status": "tested",
    },
    "new_rows": 5400,
    "estimated": {"accuracy": 0.81, "f1": 0.62},
    "quality": {
        "missing_share": {"tenure": 0.0},
        "out_of_range_share": {"tenure": 0.01},
        "unseen_share": {"contract": 0.0},
        "unseen_examples": {},
        "schema": {"missing": [], "extra": ["note"], "retyped": {"tenure": "number -> text"}},
        "flagged": ["tenure: retyped number -> text"],
    },
    "model_rows": 399,
    "estimation": {"calibrated_on": "holdout", "calibration": "platt", "calibration_rows": 900},
    "target_drift": {
        "score": 0.3,
        "drifted": False,
        "method": "chisquare",
        "threshold": 0.05,
        "status": "tested",
        "rows": 1080,
    },
    "multivariate": {"auc": 0.71, "drifted": True, "threshold": 0.65, "rows": 500},
    "backfill": {
        "tried": "2026-01-02T10:00:00+00:00",
        "at": "2026-01-02T10:00:00+00:00",
        "labelled_rows": 720,
        "metrics": {"accuracy": 0.8},
        "labelled_rows_before": 0,
        "metrics_before": {},
    },
    "backfilled": [
        {
            "check_id": 3,
            "window_end": "2026-01-02T08:00:00+00:00",
            "labelled_rows": 720,
            "metrics": {"accuracy": 0.8},
        }
    ],
    "labels": {"matched": 719, "unmatched": 1, "duplicates": 1},
    "shadow": {
        "version": 3,
        "metric": "f1",
        "value": 0.7,
        "champion": 0.6,
        "rows": 120,
        "better": True,
    },
    "guard": {
        "version": 2,
        "metric": "f1",
        "value": 0.7,
        "champion": 0.6,
        "rows": 200,
        "better": True,
        "drop": 0.1,
    },
}


def test_a_legacy_row_reads_by_attribute_and_writes_back_unchanged() -> None:
    signals = Signals.from_json(LEGACY)
    assert signals.schema_version == SCHEMA_VERSION
    assert signals.prediction_drift is not None and signals.prediction_drift.drifted
    assert signals.estimated == {"accuracy": 0.81, "f1": 0.62}
    assert signals.quality is not None and signals.quality.changes.extra == ["note"]
    assert signals.target_drift is not None and signals.target_drift.rows == 1080
    assert signals.multivariate is not None and signals.multivariate.auc == 0.71
    assert signals.backfill is not None and signals.backfill.labelled_rows_before == 0
    assert signals.backfilled is not None and signals.backfilled[0].check_id == 3
    assert signals.labels is not None and signals.labels.duplicates == 1
    assert signals.shadow is not None and signals.shadow.better
    assert signals.guard is not None and signals.guard.drop == 0.1
    assert signals.to_json() == {"schema_version": SCHEMA_VERSION, **LEGACY}


def test_an_empty_or_partial_row_reads() -> None:
    assert Signals.from_json(None) == Signals.from_json({}) == Signals()
    tried = Signals.from_json({"backfill": {"tried": "2026-01-02T10:00:00+00:00"}})
    assert tried.backfill is not None and tried.backfill.at is None
    # a record only tried keeps only what it had: no nulls appear
    assert tried.to_json()["backfill"] == {"tried": "2026-01-02T10:00:00+00:00"}
    # the parts every check wrote from the start are written as before, null or empty
    assert Signals().to_json() == {
        "schema_version": SCHEMA_VERSION,
        "prediction_drift": None,
        "new_rows": None,
        "estimated": {},
    }


def test_unknown_keys_survive_a_round_trip() -> None:
    data = {"schema_version": 1, "estimated": {}, "something_new": {"x": 1}}
    assert Signals.from_json(data).to_json()["something_new"] == {"x": 1}


def test_a_newer_schema_or_a_malformed_row_is_refused_clearly() -> None:
    with pytest.raises(ReoptdError, match=r"schema_version 99.*upgrade reoptd"):
        Signals.from_json({"schema_version": 99})
    with pytest.raises(ReoptdError, match="malformed"):
        Signals.from_json({"new_rows": "many"})
