"""metric_points clustered on (training_id, key_id, step, seq); metric_blocks, the extremes of each 256 points

Revision ID: 0009_metric_points_clustered
Revises: 0008_serving
Create Date: 2026-11-30

InnoDB and SQLite (``WITHOUT ROWID``) store a table in primary-key order: with the natural key
as the primary key, an insert maintains one B-tree instead of two and a history is one range
scan. ``seq`` is each point's ordinal in its metric's logging order (numbered here from the old
ids), the tiebreak for points logged twice at one step. PostgreSQL has no clustered tables: there
the one composite key replaces the id's index and the (training, key, step) index.

The table is rebuilt by copy (``metric_points_new``, then a rename), and each state an interrupted
run can leave is finished when run again: a half-copied new table is dropped and copied afresh
while the old table still exists; a new table alone is renamed; MySQL foreign keys (their names
are global to a database) and PostgreSQL's key name are put in place last, if missing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from modeltrail._migrations import ops

revision = "0009_metric_points_clustered"
down_revision = "0008_serving"
branch_labels = None
depends_on = None

TABLE = "metric_points"
NEW = "metric_points_new"
OLD = "metric_points_old"
PK = "pk_metric_points"
FK_TRAINING = "fk_metric_points_training_id_trainings"
FK_KEY = "fk_metric_points_key_id_metric_keys"
VALUES = "value, kind, ts"
BLOCKS = "metric_blocks"
BLOCK_POINTS = 256  # modeltrail._schema.BLOCK_POINTS when this revision was written


def _double() -> sa.types.TypeEngine[float]:
    return sa.Float(precision=53).with_variant(mysql.DOUBLE(), "mariadb").with_variant(mysql.DOUBLE(), "mysql")


def _columns(names: set[str]) -> bool:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)} >= names


def _has(name: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(name)


def _create(name: str, *, clustered: bool) -> None:
    """The new table; MySQL gets its foreign keys once the old table (holding their names) is gone."""
    dialect = op.get_bind().dialect.name
    is_mysql = dialect in ("mysql", "mariadb")
    ids = [sa.Column("training_id", sa.Integer(), nullable=False), sa.Column("key_id", sa.Integer(), nullable=False)]
    step = sa.Column("step", sa.BigInteger(), nullable=False)
    if clustered:
        columns = [*ids, step, sa.Column("seq", sa.BigInteger(), nullable=False)]
        pk_columns = ["training_id", "key_id", "step", "seq"]
    else:
        columns = [sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False), *ids, step]
        pk_columns = ["id"]
    foreign = (
        []
        if is_mysql
        else [
            sa.ForeignKeyConstraint(["key_id"], ["metric_keys.id"], name=op.f(FK_KEY)),
            sa.ForeignKeyConstraint(["training_id"], ["trainings.id"], name=op.f(FK_TRAINING), ondelete="CASCADE"),
        ]
    )
    # PostgreSQL names the key's index in the schema: the new one is renamed once the old is dropped.
    pk_name = PK + "_new" if dialect == "postgresql" and name == NEW else PK
    op.create_table(
        name,
        *columns,
        sa.Column("value", _double(), nullable=True),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("ts", _double(), nullable=False),
        *foreign,
        sa.PrimaryKeyConstraint(*pk_columns, name=op.f(pk_name)),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
        sqlite_with_rowid=not clustered,
    )


def _finish(*, clustered: bool) -> None:
    """Put in place what the last step of an interrupted run may have left out."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if bind.dialect.name in ("mysql", "mariadb"):
        names = {fk["name"] for fk in inspector.get_foreign_keys(TABLE)}
        if FK_TRAINING not in names:
            op.create_foreign_key(op.f(FK_TRAINING), TABLE, "trainings", ["training_id"], ["id"], ondelete="CASCADE")
        if FK_KEY not in names:
            op.create_foreign_key(op.f(FK_KEY), TABLE, "metric_keys", ["key_id"], ["id"])
    if bind.dialect.name == "postgresql" and inspector.get_pk_constraint(TABLE).get("name") == PK + "_new":
        op.execute(f"ALTER TABLE {TABLE} RENAME CONSTRAINT {PK}_new TO {PK}")
    index = "ix_metric_points_training_id_key_id_step"
    has_index = index in {ix["name"] for ix in inspector.get_indexes(TABLE)}
    if clustered and has_index:  # made by 0001 on a table an interrupted creation had left at this layout
        op.drop_index(op.f(index), TABLE)
    if not clustered:
        if not has_index:
            op.create_index(op.f(index), TABLE, ["training_id", "key_id", "step"])
        if bind.dialect.name == "postgresql":  # ids were copied in: the sequence continues after them
            op.execute(
                f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {TABLE}), false)"
            )


def _rebuild(*, clustered: bool, copy: str) -> None:
    """Copy ``metric_points`` into a new table of the other layout, then swap it in."""
    if _has(TABLE) and not _columns({"seq"} if clustered else {"id"}):
        if _has(NEW):
            op.drop_table(NEW)  # a copy an earlier run left half-done: the old table still holds it all
        _create(NEW, clustered=clustered)
        op.execute(copy)
        if op.get_bind().dialect.name in ("mysql", "mariadb"):
            op.execute(f"RENAME TABLE {TABLE} TO {OLD}, {NEW} TO {TABLE}")  # atomic: never no table
            op.drop_table(OLD)
        else:
            op.drop_table(TABLE)
            op.rename_table(NEW, TABLE)
    elif _has(NEW) and not _has(TABLE):
        op.rename_table(NEW, TABLE)
    elif _has(OLD):
        op.drop_table(OLD)
    _finish(clustered=clustered)


def _blocks() -> None:
    """``metric_blocks``: the extremes of every 256 points in logging order, filled from the points there."""
    if not sa.inspect(op.get_bind()).has_table(BLOCKS):
        ops.create_table(
            BLOCKS,
            sa.Column("training_id", sa.Integer(), nullable=False),
            sa.Column("key_id", sa.Integer(), nullable=False),
            sa.Column("block", sa.BigInteger(), nullable=False),
            sa.Column("count", sa.Integer(), nullable=False),
            sa.Column("min_step", sa.BigInteger(), nullable=True),
            sa.Column("min_value", _double(), nullable=True),
            sa.Column("min_kind", sa.SmallInteger(), nullable=False),
            sa.Column("min_ts", _double(), nullable=True),
            sa.Column("max_step", sa.BigInteger(), nullable=True),
            sa.Column("max_value", _double(), nullable=True),
            sa.Column("max_kind", sa.SmallInteger(), nullable=False),
            sa.Column("max_ts", _double(), nullable=True),
            sa.ForeignKeyConstraint(["key_id"], ["metric_keys.id"], name=op.f("fk_metric_blocks_key_id_metric_keys")),
            sa.ForeignKeyConstraint(
                ["training_id"],
                ["trainings.id"],
                name=op.f("fk_metric_blocks_training_id_trainings"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("training_id", "key_id", "block", name=op.f("pk_metric_blocks")),
            mysql_charset="utf8mb4",
            mysql_collate="utf8mb4_bin",
            mysql_engine="InnoDB",
            sqlite_with_rowid=False,
        )
    # Refilled whole each time (a cut run leaves a partial fill); one statement, so one transaction.
    op.execute(f"DELETE FROM {BLOCKS}")
    div = "DIV" if op.get_bind().dialect.name in ("mysql", "mariadb") else "/"
    part = f"PARTITION BY training_id, key_id, seq {div} {BLOCK_POINTS}"
    nan_last = "CASE WHEN value IS NULL THEN 1 ELSE 0 END"

    def pick(rank: str, column: str) -> str:
        return f"MAX(CASE WHEN {rank} = 1 AND value IS NOT NULL THEN {column} END)"

    op.execute(
        f"INSERT INTO {BLOCKS} (training_id, key_id, block, count, min_step, min_value, min_kind, min_ts, "
        f"max_step, max_value, max_kind, max_ts) "
        f"SELECT training_id, key_id, block, COUNT(*), {pick('rmin', 'step')}, {pick('rmin', 'value')}, "
        f"COALESCE({pick('rmin', 'kind')}, 1), {pick('rmin', 'ts')}, {pick('rmax', 'step')}, "
        f"{pick('rmax', 'value')}, COALESCE({pick('rmax', 'kind')}, 1), {pick('rmax', 'ts')} "
        f"FROM (SELECT training_id, key_id, seq {div} {BLOCK_POINTS} AS block, step, value, kind, ts, "
        f"ROW_NUMBER() OVER ({part} ORDER BY {nan_last}, value, seq) AS rmin, "
        f"ROW_NUMBER() OVER ({part} ORDER BY {nan_last}, value DESC, seq) AS rmax FROM {TABLE}) ranked "
        f"GROUP BY training_id, key_id, block"
    )


def upgrade() -> None:
    _rebuild(
        clustered=True,
        copy=(
            f"INSERT INTO {NEW} (training_id, key_id, step, seq, {VALUES}) "
            f"SELECT training_id, key_id, step, "
            f"ROW_NUMBER() OVER (PARTITION BY training_id, key_id ORDER BY id) - 1, {VALUES} FROM {TABLE}"
        ),
    )
    _blocks()


def downgrade() -> None:
    if sa.inspect(op.get_bind()).has_table(BLOCKS):
        op.drop_table(BLOCKS)
    # Logging order was (training, key, seq); the ids given back keep it.
    _rebuild(
        clustered=False,
        copy=(
            f"INSERT INTO {NEW} (id, training_id, key_id, step, {VALUES}) "
            f"SELECT ROW_NUMBER() OVER (ORDER BY training_id, key_id, seq), training_id, key_id, step, {VALUES} "
            f"FROM {TABLE}"
        ),
    )
