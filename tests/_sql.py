"""A ledger's tables as any other client sees them: each call its own engine, committed data only.

Tests read what a user would find in the database (and set up what an old or half-migrated
database holds) through these, never through the Tracker under test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, create_engine, text


def sql(url: str, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one statement in its own committed transaction; its rows (none for a write)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """Take the ledger down to ``revision`` through Alembic, as an operator's downgrade would."""
    from alembic import command

    from modeltrail._migrations import alembic_config

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), revision)
    finally:
        engine.dispose()


def upgrade(url: str) -> tuple[str | None, str | None]:
    """`modeltrail db upgrade` on the ledger: (from, to) revisions."""
    from modeltrail._store import Store

    store = Store(url, check=False)
    try:
        return store.upgrade()
    finally:
        store.close()


@contextlib.contextmanager
def old_ledger(url: str, revision: str, seed: Iterable[str]) -> Iterator[Connection]:
    """A ledger made at an older ``revision`` holding ``seed``'s rows: a migration's starting point.

    Yields the seeding transaction, for the rows that need parameters; it commits on leaving.
    """
    from modeltrail._store import Store

    store = Store(url, check=False)
    try:
        store.upgrade(revision)
        with store.engine.begin() as conn:
            for statement in seed:
                conn.execute(text(statement))
            yield conn
    finally:
        store.close()
