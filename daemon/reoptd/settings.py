"""Process-wide settings, read from ``REOPTD_*`` environment variables.

``REOPTD_HOME`` holds the SQLite database and the artifact store unless ``REOPTD_DB_URL`` points
the database elsewhere (any SQLAlchemy URL, e.g. ``postgresql+psycopg://user@host/db``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_POLICY = Path(__file__).parent / "demo" / "demo.yaml"


class PolicyLimits(BaseSettings):
    """The settings policy validation reads (and nothing else, so that an unrelated bad variable
    never stops ``reoptd policy validate``). Set by the operator, never by a policy file."""

    model_config = SettingsConfigDict(env_prefix="REOPTD_")

    allowed_estimator_modules: str = Field(
        default="sklearn.",
        description="comma-separated module prefixes `train.estimator` may name (e.g."
        " `sklearn.,xgboost.`); any other import path is refused",
    )
    policy_max_bytes: int = Field(
        default=1_048_576, ge=1, description="largest policy file read (bytes); larger: refused"
    )

    @property
    def estimator_prefixes(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.allowed_estimator_modules.split(",") if p.strip())


class Settings(PolicyLimits):
    model_config = SettingsConfigDict(env_prefix="REOPTD_")

    home: Path = Field(default=Path(".reoptd"), description="state directory")
    db_url: str | None = Field(default=None, description="SQLAlchemy URL; SQLite in home if unset")
    policies: Path | None = Field(default=None, description="policy directory; the demo if unset")
    executor: Literal["local", "inline", "ray", "process"] = Field(
        default="local",
        description="where re-optimization runs execute: `local` (a pool of worker processes"
        " beside the scheduler, `slots` at once, each stopped at a step's budget or when the"
        " daemon stops), `inline` (the calling thread; budgets only checked when a step"
        " returns) or `ray` (a task on the Ray cluster at `ray_address`); `process` is the"
        " former name of `local`",
    )
    slots: int | None = Field(
        default=None,
        ge=1,
        description="runs the `local` executor executes at once (default: one per usable core);"
        " each gets cores/slots BLAS/OpenMP threads",
    )
    ray_address: str = Field(
        default="auto",
        description="the Ray cluster of `REOPTD_EXECUTOR=ray`: `ray://host:10001` (Ray Client)"
        " or `auto` (the cluster this machine belongs to, started with `ray start`)",
    )
    ray_cpus: float = Field(
        default=1.0,
        gt=0,
        description="CPUs each run asks of the Ray cluster (as does each of its parallel tune"
        " trial tasks); its BLAS/OpenMP/torch threads are capped to them",
    )
    artifacts_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REOPTD_ARTIFACTS", "artifacts_url"),
        description="where model and reference artifacts live: an fsspec URL such as"
        " `s3://bucket/prefix` (credentials and endpoint from the AWS_* environment); unset:"
        " the `artifacts` directory in home",
    )
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    max_feature_series: int = Field(
        default=50, ge=1, description="per-feature metric series kept per model"
    )
    api_host: str = Field(default="127.0.0.1", description="address of the HTTP API")
    api_port: int = Field(default=8464, ge=0, le=65535, description="port of the HTTP API")
    api_token: SecretStr | None = Field(
        default=None, description="bearer token of mutating API routes; unset: they are disabled"
    )
    api_max_body_bytes: int = Field(
        default=32 * 2**20,
        ge=1,
        description="largest ingestion request body accepted (bytes); 32 MiB holds the"
        " 50,000 rows of api_max_rows (the demo policy's rows as JSON: about 10 MB)",
    )
    api_max_rows: int = Field(default=50_000, ge=1, description="most rows in one ingest batch")
    webhook_urls: str = Field(
        default="", description="comma-separated URLs POSTed on every promotion and rollback"
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key that signs webhook bodies"
    )
    webhook_attempts: int = Field(default=5, ge=1, le=20, description="tries per webhook delivery")
    webhook_backoff: float = Field(
        default=1.0, gt=0, description="seconds before the first retry; doubles after each"
    )

    mlflow_uri: str | None = Field(
        default=None,
        description="MLflow tracking and registry server (e.g. http://mlflow:5000); every version"
        " is logged and registered there, and the champion/challenger aliases follow promotions",
    )
    mlflow_sync_every: float = Field(
        default=60.0, gt=0, description="seconds between the daemon's MLflow sync passes"
    )
    mlflow_timeout: int = Field(
        default=10, ge=1, description="seconds an MLflow request may take before the pass fails"
    )

    @field_validator("home", mode="before")
    @classmethod
    def _empty_home_is_default(cls, value: object) -> object:
        # REOPTD_HOME="" (an unset shell variable) must not scatter state into the cwd.
        return ".reoptd" if value in ("", None) else value

    @field_validator("api_token", "webhook_secret", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("db_url", "mlflow_uri", "artifacts_url", mode="before")
    @classmethod
    def _empty_url_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.home / 'reoptd.db').resolve()}"

    @property
    def artifacts(self) -> str | Path:
        """The artifact store: ``REOPTD_ARTIFACTS`` (a URL) or ``home/artifacts``."""
        return self.artifacts_url or self.home / "artifacts"

    @property
    def webhooks(self) -> list[str]:
        return [url.strip() for url in self.webhook_urls.split(",") if url.strip()]
