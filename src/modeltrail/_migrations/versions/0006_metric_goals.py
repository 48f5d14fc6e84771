"""metric_goals: which way is better for a metric of a model, declared once

Revision ID: 0006_metric_goals
Revises: 0005_evaluations
Create Date: 2026-11-29

Idempotent: the table is created only when missing, so a database where it was made by
hand (or by a half-finished upgrade on a backend without transactional DDL) still upgrades.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import modeltrail._schema
from modeltrail._migrations import ops

revision = "0006_metric_goals"
down_revision = "0005_evaluations"
branch_labels = None
depends_on = None

TABLE = "metric_goals"


def upgrade() -> None:
    ops.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=255), nullable=False),
        sa.Column("goal", sa.String(length=3), nullable=False),
        sa.Column("set_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_metric_goals_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_goals")),
        sa.UniqueConstraint("model_id", "metric", name=op.f("uq_metric_goals_model_id_metric")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    if sa.inspect(op.get_bind()).has_table(TABLE):
        op.drop_table(TABLE)
