"""metric_summaries.model_id: the model of the version a training became; leaderboard indexes on it

Revision ID: 0010_leaderboard_index
Revises: 0009_metric_points_clustered
Create Date: 2026-12-01

The top of a leaderboard is then read in value order from a (model, key, value) index, a few
entries, instead of joining every version of the model with its summary and sorting them all.
``model_id`` is filled here from ``versions``; NULL is a training that is not a version. The
(key, max) and (key, min) indexes stay: searches by a metric's range across trainings use them.

Every step looks before it acts (MySQL commits each DDL statement on its own), so a run cut at
any point finishes when run again. The backfill comes before the indexes, which are then built
once; the indexes come before the foreign key, or InnoDB would make an index of its own for it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modeltrail._migrations import ops

revision = "0010_leaderboard_index"
down_revision = "0009_metric_points_clustered"
branch_labels = None
depends_on = None

TABLE = "metric_summaries"
COLUMN = "model_id"
FK = "fk_metric_summaries_model_id_models"
INDEXES = {
    "ix_metric_summaries_model_id_key_id_max_value": ["model_id", "key_id", "max_value"],
    "ix_metric_summaries_model_id_key_id_min_value": ["model_id", "key_id", "min_value"],
    "ix_metric_summaries_model_id_key_id_last_value": ["model_id", "key_id", "last_value"],
}
BACKFILL = (
    f"UPDATE {TABLE} SET {COLUMN} = "
    f"(SELECT v.model_id FROM versions v WHERE v.training_id = {TABLE}.training_id) "
    f"WHERE {COLUMN} IS NULL AND training_id IN (SELECT training_id FROM versions)"
)


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def _has_column() -> bool:
    return COLUMN in {c["name"] for c in _inspector().get_columns(TABLE)}


def _has_fk() -> bool:
    return any(fk["constrained_columns"] == [COLUMN] for fk in _inspector().get_foreign_keys(TABLE))


def _indexes() -> list[str]:
    found = {ix["name"] for ix in _inspector().get_indexes(TABLE)}
    return [name for name in INDEXES if name in found]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite and not _has_fk():  # SQLite adds a foreign key only by rebuilding the table (batch mode)
        with op.batch_alter_table(TABLE) as batch:
            if not _has_column():
                batch.add_column(sa.Column(COLUMN, sa.Integer(), nullable=True))
            batch.create_foreign_key(op.f(FK), "models", [COLUMN], ["id"])
    elif not _has_column():
        op.add_column(TABLE, sa.Column(COLUMN, sa.Integer(), nullable=True))
    op.execute(BACKFILL)
    for name, columns in INDEXES.items():
        ops.create_index(TABLE, name, columns)
    if not sqlite and not _has_fk():
        op.create_foreign_key(op.f(FK), TABLE, "models", [COLUMN], ["id"])


def downgrade() -> None:
    if not _has_column():
        return
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(TABLE) as batch:
            for name in _indexes():
                batch.drop_index(op.f(name))
            batch.drop_column(COLUMN)  # the rebuilt table leaves its foreign key out
        return
    if _has_fk():  # first: on MySQL it holds on to the (model_id, ...) indexes
        op.drop_constraint(op.f(FK), TABLE, type_="foreignkey")
    for name in _indexes():
        op.drop_index(op.f(name), TABLE)
    op.drop_column(TABLE, COLUMN)
