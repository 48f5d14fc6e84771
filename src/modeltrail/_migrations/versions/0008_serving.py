"""serving_instances: each ``modeltrail serve`` process, its heartbeat and how it ended

Revision ID: 0008_serving
Revises: 0007_artifacts
Create Date: 2026-11-30

Idempotent: the table and its indexes are created only when missing, so an upgrade cut off
half-way (DDL is not transactional on MySQL) finishes when run again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import modeltrail._schema
from modeltrail._migrations import ops

revision = "0008_serving"
down_revision = "0007_artifacts"
branch_labels = None
depends_on = None

TABLE = "serving_instances"


def upgrade() -> None:
    ops.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column(
            "heartbeat_s",
            sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mariadb").with_variant(mysql.DOUBLE(), "mysql"),
            nullable=False,
        ),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_serving_instances_deployment_id_deployments")
        ),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_serving_instances_model_id_models")),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"], name=op.f("fk_serving_instances_version_id_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_serving_instances")),
        sa.UniqueConstraint("uuid", name=op.f("uq_serving_instances_uuid")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    ops.create_index(TABLE, "ix_serving_instances_deployment_id", ["deployment_id"])
    ops.create_index(TABLE, "ix_serving_instances_version_id", ["version_id"])
    ops.create_index(
        TABLE, "ix_serving_instances_model_id_environment_started_at", ["model_id", "environment", "started_at"]
    )


def downgrade() -> None:
    if sa.inspect(op.get_bind()).has_table(TABLE):
        op.drop_table(TABLE)
