"""checks.signals: prediction drift, new rows and estimated metrics of each check

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("checks")}
    if "signals" in columns:  # healed by an earlier start's repair (see ``_migrate``)
        return
    with op.batch_alter_table("checks") as batch:
        batch.add_column(sa.Column("signals", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("checks") as batch:
        batch.drop_column("signals")
