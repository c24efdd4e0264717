"""ingested_predictions and ingested_labels: rows POSTed to the HTTP API (source kind api)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingested_predictions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("row_id", sa.String(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("model_id", "row_id"),
    )
    op.create_index(
        "ix_ingested_predictions_model_id", "ingested_predictions", ["model_id"], unique=False
    )
    op.create_table(
        "ingested_labels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("row_id", sa.String(), nullable=False),
        sa.Column("label", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("model_id", "row_id"),
    )
    op.create_index("ix_ingested_labels_model_id", "ingested_labels", ["model_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ingested_labels_model_id", table_name="ingested_labels")
    op.drop_table("ingested_labels")
    op.drop_index("ix_ingested_predictions_model_id", table_name="ingested_predictions")
    op.drop_table("ingested_predictions")
