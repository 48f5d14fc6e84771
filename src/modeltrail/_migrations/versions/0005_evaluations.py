"""evaluations: existing versions scored on named datasets

Revision ID: 0005_evaluations
Revises: 0004_stages
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import modeltrail._schema
from modeltrail._migrations.ops import create_index, create_table

revision = "0005_evaluations"
down_revision = "0004_stages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("dataset_name", sa.String(length=200), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("evaluated_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("evaluated_by", sa.String(length=128), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name=op.f("fk_evaluations_dataset_id_datasets")),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"], name=op.f("fk_evaluations_version_id_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
        sa.UniqueConstraint("uuid", name=op.f("uq_evaluations_uuid")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    create_index("evaluations", "ix_evaluations_dataset_id", ["dataset_id"])
    create_index(
        "evaluations",
        "ix_evaluations_version_id_dataset_name_evaluated_at",
        ["version_id", "dataset_name", "evaluated_at"],
    )

    create_table(
        "evaluation_metrics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column(
            "value",
            sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mariadb").with_variant(mysql.DOUBLE(), "mysql"),
            nullable=True,
        ),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["evaluations.id"],
            name=op.f("fk_evaluation_metrics_evaluation_id_evaluations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["key_id"], ["metric_keys.id"], name=op.f("fk_evaluation_metrics_key_id_metric_keys")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_metrics")),
        sa.UniqueConstraint("evaluation_id", "key_id", name=op.f("uq_evaluation_metrics_evaluation_id_key_id")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("evaluation_metrics")
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evaluations_version_id_dataset_name_evaluated_at"))
        batch_op.drop_index(batch_op.f("ix_evaluations_dataset_id"))
    op.drop_table("evaluations")
