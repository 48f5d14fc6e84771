"""ingested batches: exactly-once replay of spooled metric batches

Revision ID: 0003_ingested_batches
Revises: 0002_production_metrics
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from modeltrail._migrations.ops import create_table

revision = "0003_ingested_batches"
down_revision = "0002_production_metrics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_table(
        "ingested_batches",
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column(
            "ingested_ts",
            sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mariadb").with_variant(mysql.DOUBLE(), "mysql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_ingested_batches")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("ingested_batches")
