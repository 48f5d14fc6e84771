"""Migration steps that tolerate what an interrupted earlier run already made.

DDL is not transactional on MySQL/MariaDB: a connection cut in the middle of a step leaves
the tables made so far, while the stamp still names the step before. Run again, a plain
``op.create_table`` then fails with "already exists" and the ledger is stuck for good. These
helpers create only what is missing, so running a step twice finishes it instead. A table that
is there under one of our names but with other columns is not ours: that is refused, never used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from .._errors import SchemaError


def create_table(name: str, *elements: Any, **kw: Any) -> None:
    """``op.create_table``, skipped when an earlier, interrupted run already made the table."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if not inspector.has_table(name):
        op.create_table(name, *elements, **kw)
        return
    wanted = {e.name for e in elements if isinstance(e, sa.Column)}
    found = {c["name"] for c in inspector.get_columns(name)}
    if found != wanted and found not in LAYOUTS.get(name, []):  # a later revision's layout: that one finishes it
        raise SchemaError(foreign_message([name], bind), value=name)


def create_index(table: str, name: str, columns: Sequence[str], *, unique: bool = False) -> None:
    """``op.create_index`` under a naming-convention name, skipped when the index exists."""
    if name not in {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes(table)}:
        op.create_index(op.f(name), table, list(columns), unique=unique)


def foreign_tables(conn: Connection, tables: Iterable[sa.Table]) -> list[str]:
    """Names among ``tables`` that exist in the database with other columns than ours.

    A table of ours that an interrupted creation left behind has exactly our columns and is
    reused; any other table under one of our names belongs to someone else.
    """
    inspector = sa.inspect(conn)
    existing = set(inspector.get_table_names())
    return [
        table.name
        for table in tables
        if table.name in existing
        and {c["name"] for c in inspector.get_columns(table.name)}
        not in [set(table.c.keys()), *LAYOUTS.get(table.name, [])]
    ]


_SUMMARY_0001 = {
    "id", "training_id", "key_id", "count", "last_step", "last_value", "last_kind", "min_step", "min_value", "min_kind",
    "max_step", "max_value", "max_kind", "updated_ts",
}  # fmt: skip
#: Every set of columns a table of ours has had across revisions: a creation cut at any of them is ours.
LAYOUTS = {
    "metric_points": [
        {"id", "training_id", "key_id", "step", "value", "kind", "ts"},  # 0001-0006
        {"training_id", "key_id", "step", "seq", "value", "kind", "ts"},  # 0009
    ],
    "metric_summaries": [_SUMMARY_0001, _SUMMARY_0001 | {"model_id"}],  # 0001-0009, 0010
}


def foreign_message(names: Sequence[str], conn: Connection) -> str:
    url = conn.engine.url.set(query={}).render_as_string(hide_password=True)
    return (
        f"{url} already has tables named like modeltrail's but made by something else: {', '.join(names)}; "
        "modeltrail created nothing there. Use another database (or schema), or rename those tables"
    )
