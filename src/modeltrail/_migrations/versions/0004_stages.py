"""stages: pipeline stages of a training

Revision ID: 0004_stages
Revises: 0003_ingested_batches
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import modeltrail._schema
from modeltrail._migrations.ops import create_table

revision = "0004_stages"
down_revision = "0003_ingested_batches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_table(
        "stages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("training_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "duration_s",
            sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mariadb").with_variant(mysql.DOUBLE(), "mysql"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("params", sa.JSON().with_variant(modeltrail._schema.JSONText(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["training_id"], ["trainings.id"], name=op.f("fk_stages_training_id_trainings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stages")),
        sa.UniqueConstraint("training_id", "position", name=op.f("uq_stages_training_id_position")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("stages")
