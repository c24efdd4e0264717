"""initial schema: models, versions, checks, decisions, runs, champion events

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database whose first start was cut off by an older reoptd (its DDL was not atomic on
    # SQLite) or made before migrations existed may hold some of these tables: only the
    # missing ones are created.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "models" not in existing:
        op.create_table(
            "models",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("name", sa.String(), nullable=False),
            sa.Column("task", sa.String(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("champion_version", sa.Integer(), nullable=True),
            sa.Column("champion_since", sa.DateTime(timezone=True), nullable=True),
            sa.Column("policy", sa.JSON(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("models", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_models_name"), ["name"], unique=True)

    if "champion_events" not in existing:
        op.create_table(
            "champion_events",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("model_id", sa.Integer(), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("kind", sa.String(), nullable=False),
            sa.Column("from_version", sa.Integer(), nullable=True),
            sa.Column("to_version", sa.Integer(), nullable=False),
            sa.Column("reason", sa.String(), nullable=False),
            sa.ForeignKeyConstraint(
                ["model_id"],
                ["models.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("champion_events", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_champion_events_model_id"), ["model_id"], unique=False
            )

    if "checks" not in existing:
        op.create_table(
            "checks",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("model_id", sa.Integer(), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
            sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
            sa.Column("status", sa.String(), nullable=False),
            sa.Column("reason", sa.String(), nullable=False),
            sa.Column("champion_version", sa.Integer(), nullable=True),
            sa.Column("rows", sa.Integer(), nullable=False),
            sa.Column("labelled_rows", sa.Integer(), nullable=False),
            sa.Column("drift_share", sa.Float(), nullable=True),
            sa.Column("dataset_drift", sa.Boolean(), nullable=True),
            sa.Column("features", sa.JSON(), nullable=False),
            sa.Column("metrics", sa.JSON(), nullable=False),
            sa.Column("seconds", sa.Float(), nullable=False),
            sa.ForeignKeyConstraint(
                ["model_id"],
                ["models.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("checks", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_checks_model_id"), ["model_id"], unique=False)

    if "model_versions" not in existing:
        op.create_table(
            "model_versions",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("model_id", sa.Integer(), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("status", sa.String(), nullable=False),
            sa.Column("trigger", sa.String(), nullable=False),
            sa.Column("parent_version", sa.Integer(), nullable=True),
            sa.Column("estimator", sa.String(), nullable=False),
            sa.Column("params", sa.JSON(), nullable=False),
            sa.Column("metrics", sa.JSON(), nullable=False),
            sa.Column("artifact_path", sa.String(), nullable=False),
            sa.Column("sha256", sa.String(), nullable=False),
            sa.Column("size_bytes", sa.Integer(), nullable=False),
            sa.Column("reference_sha256", sa.String(), nullable=False),
            sa.Column("train_rows", sa.Integer(), nullable=False),
            sa.Column("train_start", sa.DateTime(timezone=True), nullable=True),
            sa.Column("train_end", sa.DateTime(timezone=True), nullable=True),
            sa.ForeignKeyConstraint(
                ["model_id"],
                ["models.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("model_id", "version"),
        )
        with op.batch_alter_table("model_versions", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_model_versions_model_id"), ["model_id"], unique=False
            )

    if "decisions" not in existing:
        op.create_table(
            "decisions",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("model_id", sa.Integer(), nullable=False),
            sa.Column("check_id", sa.Integer(), nullable=True),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("fire", sa.Boolean(), nullable=False),
            sa.Column("triggers", sa.JSON(), nullable=False),
            sa.Column("reasons", sa.String(), nullable=False),
            sa.ForeignKeyConstraint(
                ["check_id"],
                ["checks.id"],
            ),
            sa.ForeignKeyConstraint(
                ["model_id"],
                ["models.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("decisions", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_decisions_model_id"), ["model_id"], unique=False)

    if "optimization_runs" not in existing:
        op.create_table(
            "optimization_runs",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("model_id", sa.Integer(), nullable=False),
            sa.Column("decision_id", sa.Integer(), nullable=True),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("trigger", sa.String(), nullable=False),
            sa.Column("outcome", sa.String(), nullable=False),
            sa.Column("reason", sa.String(), nullable=False),
            sa.Column("champion_version", sa.Integer(), nullable=True),
            sa.Column("challenger_version", sa.Integer(), nullable=True),
            sa.Column("steps", sa.JSON(), nullable=False),
            sa.Column("seconds", sa.Float(), nullable=False),
            sa.ForeignKeyConstraint(
                ["decision_id"],
                ["decisions.id"],
            ),
            sa.ForeignKeyConstraint(
                ["model_id"],
                ["models.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("optimization_runs", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_optimization_runs_model_id"), ["model_id"], unique=False
            )


def downgrade() -> None:
    with op.batch_alter_table("optimization_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_optimization_runs_model_id"))

    op.drop_table("optimization_runs")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_model_id"))

    op.drop_table("decisions")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_versions_model_id"))

    op.drop_table("model_versions")
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_checks_model_id"))

    op.drop_table("checks")
    with op.batch_alter_table("champion_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_champion_events_model_id"))

    op.drop_table("champion_events")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_name"))

    op.drop_table("models")
