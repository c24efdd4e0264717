"""optimization_runs as durable jobs (job, attempts, lease_until; outcome ``queued``) and
model_owners: which replica checks each model

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "model_owners" not in existing:
        op.create_table(
            "model_owners",
            sa.Column("model", sa.String(), primary_key=True),
            sa.Column("owner", sa.String(), nullable=False),
        )
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("optimization_runs")}
    with op.batch_alter_table("optimization_runs") as batch:
        if "job" not in columns:
            # runs recorded before 0005 carry no job: they were executed where they were started
            batch.add_column(sa.Column("job", sa.JSON(), nullable=False, server_default="{}"))
        if "attempts" not in columns:
            batch.add_column(
                sa.Column("attempts", sa.Integer(), nullable=False, server_default="1")
            )
        if "lease_until" not in columns:
            batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_optimization_runs_outcome", "optimization_runs", ["outcome"])


def downgrade() -> None:
    op.drop_index("ix_optimization_runs_outcome", table_name="optimization_runs")
    with op.batch_alter_table("optimization_runs") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("attempts")
        batch.drop_column("job")
    op.drop_table("model_owners")
