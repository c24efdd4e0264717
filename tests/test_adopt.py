"""``reoptd models adopt``: a team's own fitted pipeline becomes version 1 and champion, after
its columns are checked against the policy; the daemon then checks windows with it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from typer.testing import CliRunner

from reoptd.cli import app
from reoptd.cycle import ModelLoop
from reoptd.data import DemoSource, demo
from reoptd.errors import AdoptError, ReoptdError
from reoptd.metrics import Metrics
from reoptd.models import load_model
from reoptd.policy import Policy, load_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store.sql import SqlStore

MODEL = "demo_churn"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(DEMO_POLICY)


@pytest.fixture(scope="module")
def rows(policy: Policy) -> pd.DataFrame:
    """Three hours of the demo stream before its drift: the team's training and reference rows."""
    return DemoSource().read(demo.START, demo.START + timedelta(hours=3))


def team_pipeline(rows: pd.DataFrame, policy: Policy, columns: list[str] | None = None):  # type: ignore[no-untyped-def]
    """The kind of model a team already serves: its own preprocessing and estimator."""
    columns = policy.features.all if columns is None else columns
    labelled = rows.dropna(subset=[policy.target])
    categorical = [c for c in columns if c in policy.features.categorical]
    prep = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), categorical), remainder="passthrough"
    )
    return make_pipeline(prep, LogisticRegression(max_iter=1000)).fit(
        labelled[columns], labelled[policy.target]
    )


def _adopt(home: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(
        app, ["models", "adopt", MODEL, *args], env={"REOPTD_HOME": str(home)}
    )


@pytest.mark.slow
def test_an_adopted_pipeline_becomes_champion_and_is_checked(
    tmp_path: Path, policy: Policy, rows: pd.DataFrame
) -> None:
    pipeline = team_pipeline(rows, policy)
    joblib.dump(pipeline, tmp_path / "team.joblib")
    rows.to_parquet(tmp_path / "reference.parquet")
    labelled = int(rows[policy.target].notna().sum())

    result = _adopt(
        tmp_path / "home",
        "--artifact", str(tmp_path / "team.joblib"),
        "--reference", str(tmp_path / "reference.parquet"),
        "--trust",
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"{MODEL}: adopted {tmp_path / 'team.joblib'} as v1 (champion)" in result.output
    assert (
        f"reference {len(rows)} rows" in result.output and f"({labelled} labelled" in result.output
    )

    registry = SqlStore(
        f"sqlite:///{tmp_path / 'home' / 'reoptd.db'}", tmp_path / "home" / "artifacts"
    )
    champion = registry.champion(MODEL)
    assert champion is not None and champion.version == 1 and champion.trigger == "adopted"
    (event,) = registry.events(MODEL)
    assert event.kind == "promote" and event.reason == f"adopted from {tmp_path / 'team.joblib'}"
    # the stored model is the team's pipeline: same predictions, same holdout score
    model = load_model(registry.load_artifact(champion))
    assert (model.predict(rows) == pipeline.predict(rows[policy.features.all])).all()
    assert champion.metrics["holdout_rows"] == labelled
    assert 0 < champion.metrics["holdout"][policy.metric] <= 1
    assert champion.estimator == "sklearn.pipeline.Pipeline"

    # the daemon's cycle checks a later window with the adopted champion
    loop = ModelLoop(policy, registry, Metrics())
    loop.start()
    outcome = loop.cycle(demo.START + timedelta(hours=4))
    assert outcome.check is not None and outcome.check.status == "ok", outcome.check
    assert outcome.check.champion_version == 1
    assert outcome.check.metrics[policy.metric] > 0  # scored by the team's model
    registry.close()


def test_columns_that_do_not_match_the_policy_are_named(
    tmp_path: Path, policy: Policy, rows: pd.DataFrame
) -> None:
    frame = rows.assign(region_code=1.0)
    columns = [c for c in policy.features.all if c != "support_calls"] + ["region_code"]
    joblib.dump(team_pipeline(frame, policy, columns), tmp_path / "team.pkl")
    rows.to_parquet(tmp_path / "reference.parquet")
    result = _adopt(
        tmp_path / "home",
        "--artifact", str(tmp_path / "team.pkl"),
        "--reference", str(tmp_path / "reference.parquet"),
        "--trust",
    )  # fmt: skip
    assert isinstance(result.exception, AdoptError)
    message = str(result.exception)
    assert "it reads columns the policy's features lack: region_code" in message
    assert "the policy's features it does not read: support_calls" in message
    registry = SqlStore(
        f"sqlite:///{tmp_path / 'home' / 'reoptd.db'}", tmp_path / "home" / "artifacts"
    )
    assert registry.models() == []  # nothing was stored
    registry.close()


def test_a_model_fitted_on_an_array_and_an_untrusted_file_are_refused(
    tmp_path: Path, policy: Policy, rows: pd.DataFrame
) -> None:
    labelled = rows.dropna(subset=[policy.target])
    numeric = policy.features.numerical
    model = LogisticRegression().fit(labelled[numeric].to_numpy(), labelled[policy.target])
    joblib.dump(model, tmp_path / "array.joblib")
    rows.to_parquet(tmp_path / "reference.parquet")
    args = ["--artifact", str(tmp_path / "array.joblib"), "--reference"]
    result = _adopt(tmp_path / "home", *args, str(tmp_path / "reference.parquet"))
    assert isinstance(result.exception, ReoptdError)
    assert "say so with --trust" in str(result.exception)
    result = _adopt(tmp_path / "home", *args, str(tmp_path / "reference.parquet"), "--trust")
    assert isinstance(result.exception, AdoptError)
    assert "fitted without column names" in str(result.exception)
    rows.drop(columns=["tenure"]).to_parquet(tmp_path / "short.parquet")
    joblib.dump(team_pipeline(rows, policy), tmp_path / "team.joblib")
    result = _adopt(
        tmp_path / "home",
        "--artifact", str(tmp_path / "team.joblib"),
        "--reference", str(tmp_path / "short.parquet"),
        "--trust",
    )  # fmt: skip
    assert isinstance(result.exception, AdoptError)
    assert "reference lacks the policy's columns: tenure" in str(result.exception)


def test_the_reference_can_be_the_policys_own_source_over_a_window(
    tmp_path: Path, policy: Policy, rows: pd.DataFrame
) -> None:
    joblib.dump(team_pipeline(rows, policy), tmp_path / "team.joblib")
    args = ["--artifact", str(tmp_path / "team.joblib"), "--trust"]
    result = _adopt(tmp_path / "home", *args, "--window", "2h")
    assert result.exit_code == 0, result.output + repr(result.exception)
    # the demo clock starts at the demo's start; the demo source has history before it
    expected = DemoSource().read(demo.START - timedelta(hours=2), demo.START)
    assert f"reference {len(expected)} rows from demo source, 2h up to" in result.output
    result = _adopt(tmp_path / "home", *args, "--window", "soon")
    assert isinstance(result.exception, ReoptdError)
    assert "--window soon: expected a duration like 15m, 6h or 30d" in str(result.exception)
