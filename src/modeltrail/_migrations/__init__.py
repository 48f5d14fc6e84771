"""Alembic migrations shipped inside the package.

Alembic itself is imported only to create or upgrade a database: opening a ledger
that is already current reads one row and never pays for the import.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from .._schema import VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config

    from .._store import Store

#: Every revision in order, oldest first; a test checks this against the scripts.
REVISIONS: tuple[str, ...] = (
    "0001_initial",
    "0002_production_metrics",
    "0003_ingested_batches",
    "0004_stages",
    "0005_evaluations",
)
HERE = Path(__file__).resolve().parent


def head_revision() -> str:
    return REVISIONS[-1]


def is_known(revision: str) -> bool:
    return revision in REVISIONS


def current_revision(bind: Engine | Connection) -> str | None:
    """The revision stamped in the database, or None for a database without modeltrail."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return current_revision(conn)
    if not inspect(bind).has_table(VERSION_TABLE):
        return None
    return bind.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_table", VERSION_TABLE)
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(store: Store, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate ``store`` to ``revision`` and record an audit event; returns (from, to)."""
    from alembic import command

    with store.engine.begin() as conn:
        before = current_revision(conn)
        command.upgrade(alembic_config(conn), revision)
        after = current_revision(conn)
    if before != after:
        from .._audit import record_event

        store.run(
            lambda s: record_event(
                s,
                store,
                action="schema.upgrade",
                entity="schema",
                entity_id=str(after),
                before={"revision": before},
                after={"revision": after},
            )
        )
    return before, after


def create_new(store: Store) -> None:
    upgrade(store, "head")
