"""artifacts: named, content-addressed files per training; version aliases, tags and notes; ledger settings

Revision ID: 0007_artifacts
Revises: 0006_metric_goals
Create Date: 2026-11-30

Idempotent like every step: a table is created only when missing, so a cut-off upgrade
(MySQL's DDL is not transactional) finishes when run again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import modeltrail._schema
from modeltrail._migrations.ops import create_index, create_table

revision = "0007_artifacts"
down_revision = "0006_metric_goals"
branch_labels = None
depends_on = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}
TABLES = ("ledger_settings", "version_notes", "version_tags", "version_aliases", "artifacts")


def _time(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, modeltrail._schema.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    create_table(
        "artifacts",
        sa.Column("id", big_id, nullable=False),
        sa.Column("training_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=128), nullable=True),
        sa.Column("role", sa.String(length=64), nullable=True),
        sa.Column("flavor", sa.String(length=64), nullable=True),
        sa.Column("flavor_info", sa.JSON().with_variant(modeltrail._schema.JSONText(), "sqlite"), nullable=True),
        sa.Column("source_path", sa.Text(), nullable=True),
        sa.Column("store_url", sa.Text(), nullable=True),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        _time("created_at"),
        _time("stored_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["training_id"], ["trainings.id"], name=op.f("fk_artifacts_training_id_trainings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
        sa.UniqueConstraint("training_id", "name", name=op.f("uq_artifacts_training_id_name")),
        **MYSQL,
    )
    create_index("artifacts", "ix_artifacts_sha256", ["sha256"])
    create_table(
        "version_aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        _time("set_at"),
        sa.Column("set_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_version_aliases_model_id_models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"], name=op.f("fk_version_aliases_version_id_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_version_aliases")),
        sa.UniqueConstraint("model_id", "alias", name=op.f("uq_version_aliases_model_id_alias")),
        **MYSQL,
    )
    create_index("version_aliases", "ix_version_aliases_version_id", ["version_id"])
    create_table(
        "version_tags",
        sa.Column("id", big_id, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"], ["versions.id"], name=op.f("fk_version_tags_version_id_versions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_version_tags")),
        sa.UniqueConstraint("version_id", "key", name=op.f("uq_version_tags_version_id_key")),
        **MYSQL,
    )
    create_index("version_tags", "ix_version_tags_key_value", ["key", "value"])
    create_table(
        "version_notes",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _time("updated_at"),
        sa.Column("updated_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"], ["versions.id"], name=op.f("fk_version_notes_version_id_versions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("version_id", name=op.f("pk_version_notes")),
        **MYSQL,
    )
    create_table(
        "ledger_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        _time("set_at"),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ledger_settings")),
        **MYSQL,
    )


def downgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table in TABLES:
        if inspector.has_table(table):
            op.drop_table(table)
