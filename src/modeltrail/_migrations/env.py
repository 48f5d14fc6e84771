"""Alembic environment: runs on the connection modeltrail hands over."""

from __future__ import annotations

from typing import Any

from alembic import context

from modeltrail._schema import VERSION_TABLE, Base

config = context.config
connection = config.attributes.get("connection")


def _stop_if_stamped(conn: Any) -> None:
    """In a creation: stop if another process (a Galera node races creations) stamped the ledger meanwhile.
    Its trainers may be writing already, and DDL run under their writes is what hangs a Galera cluster (a
    DDL waiting on a metadata lock an applier holds, the applier waiting on the DDL)."""
    from modeltrail._migrations import CreationFinished, current_revision

    if current_revision(conn) is not None:
        raise CreationFinished


def _between_steps(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
    _stop_if_stamped(ctx.connection)


def run_migrations(conn: Any) -> None:
    version_table = config.get_main_option("version_table") or VERSION_TABLE  # creation uses its own
    context.configure(
        connection=conn,
        target_metadata=Base.metadata,
        version_table=version_table,
        render_as_batch=True,  # SQLite alters tables by copy-and-move
        compare_type=True,
        on_version_apply=_between_steps if version_table != VERSION_TABLE else None,
    )
    if version_table != VERSION_TABLE:  # before Alembic makes its progress table: a stamped ledger keeps none
        _stop_if_stamped(conn)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run_migrations(connection)
else:  # `alembic` command line with sqlalchemy.url set, for maintainers generating revisions
    from sqlalchemy import create_engine

    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///modeltrail.db")
    with engine.begin() as conn:
        run_migrations(conn)
