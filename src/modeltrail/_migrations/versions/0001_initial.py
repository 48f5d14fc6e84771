"""initial schema

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import modeltrail._schema
from modeltrail._migrations.ops import create_index, create_table

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", modeltrail._schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("db_user", sa.String(length=128), nullable=True),
        sa.Column("os_user", sa.String(length=128), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("before", sa.JSON().with_variant(modeltrail._schema.JSONText(), "sqlite"), nullable=True),
        sa.Column("after", sa.JSON().with_variant(modeltrail._schema.JSONText(), "sqlite"), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    create_index("audit_events", "ix_audit_events_action", ["action"])
    create_index("audit_events", "ix_audit_events_at", ["at"])
    create_index("audit_events", "ix_audit_events_entity_entity_id", ["entity", "entity_id"])

    create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("n_rows", sa.BigInteger(), nullable=True),
        sa.Column("n_features", sa.BigInteger(), nullable=True),
        sa.Column("shape", sa.JSON().with_variant(modeltrail._schema.JSONText(), "sqlite"), nullable=True),
        sa.Column("features", sa.JSON().with_variant(modeltrail._schema.JSONText(), "sqlite"), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("created_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("digest", "name", name=op.f("uq_datasets_digest_name")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    create_table(
        "metric_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_keys")),
        sa.UniqueConstraint("name", name=op.f("uq_metric_keys_name")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("model_type", sa.String(length=64), nullable=True),
        sa.Column("framework", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    create_index("models", "ix_models_framework_model_type", ["framework", "model_type"])

    create_table(
        "model_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_model_tags_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_tags")),
        sa.UniqueConstraint("model_id", "key", name=op.f("uq_model_tags_model_id_key")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    create_index("model_tags", "ix_model_tags_key_value", ["key", "value"])

    create_table(
        "trainings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "duration_s",
            sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mariadb").with_variant(mysql.DOUBLE(), "mysql"),
            nullable=True,
        ),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("artifact_path", sa.Text(), nullable=True),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=True),
        sa.Column("artifact_size", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("run_by", sa.String(length=128), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("git_commit", sa.String(length=64), nullable=True),
        sa.Column("context", sa.JSON().with_variant(modeltrail._schema.JSONText(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name=op.f("fk_trainings_dataset_id_datasets")),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_trainings_model_id_models")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trainings")),
        sa.UniqueConstraint("uuid", name=op.f("uq_trainings_uuid")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    create_index("trainings", "ix_trainings_dataset_id", ["dataset_id"])
    create_index("trainings", "ix_trainings_git_commit", ["git_commit"])
    create_index("trainings", "ix_trainings_model_id_started_at", ["model_id", "started_at"])
    create_index("trainings", "ix_trainings_status", ["status"])

    create_table(
        "metric_points",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("training_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column(
            "value",
            sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mariadb").with_variant(mysql.DOUBLE(), "mysql"),
            nullable=True,
        ),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column(
            "ts",
            sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mariadb").with_variant(mysql.DOUBLE(), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["key_id"], ["metric_keys.id"], name=op.f("fk_metric_points_key_id_metric_keys")),
        sa.ForeignKeyConstraint(
            ["training_id"], ["trainings.id"], name=op.f("fk_metric_points_training_id_trainings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_points")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    create_index("metric_points", "ix_metric_points_training_id_key_id_step", ["training_id", "key_id", "step"])

    create_table(
        "metric_summaries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("training_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column(
            "last_value",
            sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mariadb").with_variant(mysql.DOUBLE(), "mysql"),
            nullable=True,
        ),
        sa.Column("last_kind", sa.SmallInteger(), nullable=False),
        sa.Column("min_step", sa.BigInteger(), nullable=True),
        sa.Column(
            "min_value",
            sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mariadb").with_variant(mysql.DOUBLE(), "mysql"),
            nullable=True,
        ),
        sa.Column("min_kind", sa.SmallInteger(), nullable=False),
        sa.Column("max_step", sa.BigInteger(), nullable=True),
        sa.Column(
            "max_value",
            sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mariadb").with_variant(mysql.DOUBLE(), "mysql"),
            nullable=True,
        ),
        sa.Column("max_kind", sa.SmallInteger(), nullable=False),
        sa.Column(
            "updated_ts",
            sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mariadb").with_variant(mysql.DOUBLE(), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["key_id"], ["metric_keys.id"], name=op.f("fk_metric_summaries_key_id_metric_keys")),
        sa.ForeignKeyConstraint(
            ["training_id"],
            ["trainings.id"],
            name=op.f("fk_metric_summaries_training_id_trainings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_summaries")),
        sa.UniqueConstraint("training_id", "key_id", name=op.f("uq_metric_summaries_training_id_key_id")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    create_index("metric_summaries", "ix_metric_summaries_key_id_max_value", ["key_id", "max_value"])
    create_index("metric_summaries", "ix_metric_summaries_key_id_min_value", ["key_id", "min_value"])

    create_table(
        "params",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("training_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.JSON().with_variant(modeltrail._schema.JSONText(), "sqlite"), nullable=True),
        sa.Column(
            "display",
            sa.Text().with_variant(mysql.LONGTEXT(), "mariadb").with_variant(mysql.LONGTEXT(), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["training_id"], ["trainings.id"], name=op.f("fk_params_training_id_trainings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_params")),
        sa.UniqueConstraint("training_id", "key", name=op.f("uq_params_training_id_key")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    create_table(
        "versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("training_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("artifact_path", sa.Text(), nullable=True),
        sa.Column("param_diff", sa.JSON().with_variant(modeltrail._schema.JSONText(), "sqlite"), nullable=True),
        sa.Column("created_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_versions_model_id_models")),
        sa.ForeignKeyConstraint(["parent_id"], ["versions.id"], name=op.f("fk_versions_parent_id_versions")),
        sa.ForeignKeyConstraint(["training_id"], ["trainings.id"], name=op.f("fk_versions_training_id_trainings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_versions")),
        sa.UniqueConstraint("model_id", "number", name=op.f("uq_versions_model_id_number")),
        sa.UniqueConstraint("training_id", name=op.f("uq_versions_training_id")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("deployed_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", modeltrail._schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deployed_by", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("replaces_id", sa.Integer(), nullable=True),
        sa.Column("rollback_of_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_deployments_model_id_models")),
        sa.ForeignKeyConstraint(
            ["replaces_id"], ["deployments.id"], name=op.f("fk_deployments_replaces_id_deployments")
        ),
        sa.ForeignKeyConstraint(
            ["rollback_of_id"], ["deployments.id"], name=op.f("fk_deployments_rollback_of_id_deployments")
        ),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"], name=op.f("fk_deployments_version_id_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    create_index("deployments", "ix_deployments_environment_status", ["environment", "status"])
    create_index(
        "deployments", "ix_deployments_model_id_environment_deployed_at", ["model_id", "environment", "deployed_at"]
    )
    create_index("deployments", "ix_deployments_version_id", ["version_id"])


def downgrade() -> None:

    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployments_version_id"))
        batch_op.drop_index(batch_op.f("ix_deployments_model_id_environment_deployed_at"))
        batch_op.drop_index(batch_op.f("ix_deployments_environment_status"))

    op.drop_table("deployments")
    op.drop_table("versions")
    op.drop_table("params")
    with op.batch_alter_table("metric_summaries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_metric_summaries_key_id_min_value"))
        batch_op.drop_index(batch_op.f("ix_metric_summaries_key_id_max_value"))

    op.drop_table("metric_summaries")
    with op.batch_alter_table("metric_points", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_metric_points_training_id_key_id_step"))

    op.drop_table("metric_points")
    with op.batch_alter_table("trainings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trainings_status"))
        batch_op.drop_index(batch_op.f("ix_trainings_model_id_started_at"))
        batch_op.drop_index(batch_op.f("ix_trainings_git_commit"))
        batch_op.drop_index(batch_op.f("ix_trainings_dataset_id"))

    op.drop_table("trainings")
    with op.batch_alter_table("model_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_tags_key_value"))

    op.drop_table("model_tags")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_framework_model_type"))

    op.drop_table("models")
    op.drop_table("metric_keys")
    op.drop_table("datasets")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_entity_entity_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_at"))
        batch_op.drop_index(batch_op.f("ix_audit_events_action"))

    op.drop_table("audit_events")
