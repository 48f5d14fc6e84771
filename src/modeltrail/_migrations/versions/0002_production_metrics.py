"""production metrics

Revision ID: 0002_production_metrics
Revises: 0001_initial
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import modeltrail._schema
from modeltrail._migrations.ops import create_index, create_table

revision = "0002_production_metrics"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_table(
        "production_metrics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column(
            "value",
            sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mariadb").with_variant(mysql.DOUBLE(), "mysql"),
            nullable=True,
        ),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("measured_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_production_metrics_deployment_id_deployments")
        ),
        sa.ForeignKeyConstraint(["key_id"], ["metric_keys.id"], name=op.f("fk_production_metrics_key_id_metric_keys")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_production_metrics")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    create_index(
        "production_metrics",
        "ix_production_metrics_deployment_id_key_id_measured_at",
        ["deployment_id", "key_id", "measured_at"],
    )


def downgrade() -> None:
    with op.batch_alter_table("production_metrics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_production_metrics_deployment_id_key_id_measured_at"))

    op.drop_table("production_metrics")
