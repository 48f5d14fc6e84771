"""Alembic migrations shipped inside the package.

The revisions are what Alembic's :class:`~alembic.script.ScriptDirectory` finds in ``versions/``:
no hand-kept list. Reading them imports ``alembic.script`` once per process, when the first
ledger opens; the heavier parts of Alembic (``command``, the migration context) are imported only
to create or upgrade a database.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from .._audit import Ledger, record_event
from .._errors import SchemaError
from .._schema import VERSION_TABLE, Base

if TYPE_CHECKING:
    from alembic.config import Config

T = TypeVar("T")


class Migratable(Ledger, Protocol):
    """What an upgrade needs of a :class:`~modeltrail._store.Store`; a protocol, as migrations sit below it."""

    engine: Engine

    def run(self, work: Callable[[Session], T], *, attempts: int = ..., read_only: bool = ...) -> T: ...


HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def revisions() -> tuple[str, ...]:
    """Every revision in order, oldest first, as the migration scripts chain them."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(HERE))
    return tuple(reversed([script.revision for script in scripts.walk_revisions()]))


def head_revision() -> str:
    return revisions()[-1]


def is_known(revision: str) -> bool:
    return revision in revisions()


def __getattr__(name: str) -> Any:
    if name == "REVISIONS":  # the tuple older callers read; computed from the scripts
        return revisions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Where a creation keeps its progress until it is complete: the real stamp is written last, so a
#: ledger is never stamped at a revision it did not fully reach (see :func:`upgrade`).
CREATION_TABLE = f"{VERSION_TABLE}_creating"


def current_revision(bind: Engine | Connection, table: str = VERSION_TABLE) -> str | None:
    """The revision stamped in the database, or None for a database without modeltrail."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return current_revision(conn, table)
    if not inspect(bind).has_table(table):
        return None
    return bind.execute(text(f"SELECT version_num FROM {table}")).scalar()


def alembic_config(connection: Connection | None = None, version_table: str = VERSION_TABLE) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_table", version_table)
    cfg.attributes["connection"] = connection
    return cfg


class CreationFinished(Exception):
    """Raised between two steps of a creation when another process has stamped the ledger meanwhile."""


def creation_in_flight(bind: Engine | Connection) -> bool:
    """Our tables are there with neither a stamp nor a creation's progress table: a creator is between its
    last step and its stamp (or died there; the next creation then re-runs its tolerant steps)."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return creation_in_flight(conn)
    inspector = inspect(bind)
    return (
        inspector.has_table("models")
        and not inspector.has_table(CREATION_TABLE)
        and not inspector.has_table(VERSION_TABLE)
    )


def upgrade(store: Migratable, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate ``store`` to ``revision`` and record an audit event; returns (from, to).

    Safe to run again after an interruption: a brand-new database is checked for foreign
    tables under our names before anything is created, and every step creates only what an
    earlier, cut-off run left missing (see :mod:`modeltrail._migrations.ops`). A creation
    records its progress in :data:`CREATION_TABLE` and stamps the ledger only once complete,
    so a cut leaves no stamp and the next process simply creates what is still missing.
    """
    from alembic import command
    from alembic.util import CommandError

    from . import ops

    with store.engine.begin() as conn:
        before = current_revision(conn)
        if before is not None and not is_known(before):
            raise SchemaError(newer_message(conn, before), value=before)
        if before is None:
            foreign = ops.foreign_tables(conn, Base.metadata.sorted_tables)
            if foreign:
                raise SchemaError(ops.foreign_message(foreign, conn), value=foreign[0])
        try:
            if before is None:
                command.upgrade(alembic_config(conn, CREATION_TABLE), revision)
                reached = current_revision(conn, CREATION_TABLE)
                conn.execute(text(f"DROP TABLE {CREATION_TABLE}"))  # a cut after this re-runs tolerant steps
                command.stamp(alembic_config(conn), reached or "base")
            else:
                command.upgrade(alembic_config(conn), revision)
        except CreationFinished:  # another process finished creating it between two of our steps: it is done
            return before, current_revision(conn)
        except CommandError as e:
            raise SchemaError(f"cannot upgrade to revision {revision!r}: {e}", value=revision) from e
        after = current_revision(conn)
    if before != after:
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


def create_new(store: Migratable) -> None:
    upgrade(store, "head")


def newer_message(bind: Engine | Connection, revision: str) -> str:
    url = bind.engine.url.set(query={}).render_as_string(hide_password=True)
    return (
        f"{url} is at schema revision {revision}, which this modeltrail does not know (newest known: "
        f"{head_revision()}): the database was upgraded by a newer modeltrail; upgrade the modeltrail package"
    )
