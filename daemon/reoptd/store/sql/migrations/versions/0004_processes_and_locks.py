"""processes, model_locks and optimization_runs.owner: leases, one cycle per model across
processes, and the daemon's clock for the CLI

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "processes" not in existing:
        op.create_table(
            "processes",
            sa.Column("owner", sa.String(), primary_key=True),
            sa.Column("host", sa.String(), nullable=False),
            sa.Column("pid", sa.Integer(), nullable=False),
            sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("clock_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("clock_speed", sa.Float(), nullable=True),
        )
    if "model_locks" not in existing:
        op.create_table(
            "model_locks",
            sa.Column("model", sa.String(), primary_key=True),
            sa.Column("owner", sa.String(), nullable=False),
        )
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("optimization_runs")}
    if "owner" not in columns:
        with op.batch_alter_table("optimization_runs") as batch:
            batch.add_column(sa.Column("owner", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("optimization_runs") as batch:
        batch.drop_column("owner")
    op.drop_table("model_locks")
    op.drop_table("processes")
