"""Alembic environment: runs on the connection modeltrail hands over."""

from __future__ import annotations

from typing import Any

from alembic import context

from modeltrail._schema import VERSION_TABLE, Base

config = context.config
connection = config.attributes.get("connection")


def run_migrations(conn: Any) -> None:
    context.configure(
        connection=conn,
        target_metadata=Base.metadata,
        version_table=config.get_main_option("version_table") or VERSION_TABLE,  # creation uses its own
        render_as_batch=True,  # SQLite alters tables by copy-and-move
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run_migrations(connection)
else:  # `alembic` command line with sqlalchemy.url set, for maintainers generating revisions
    from sqlalchemy import create_engine

    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///modeltrail.db")
    with engine.begin() as conn:
        run_migrations(conn)
