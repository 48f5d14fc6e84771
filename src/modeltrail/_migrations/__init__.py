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

from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from .._audit import Ledger, record_event
from .._errors import SchemaError
from .._schema import VERSION_TABLE, AuditEventRow, Base, ModelRow

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


def upgrade(store: Migratable, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate ``store`` to ``revision`` and record an audit event; returns (from, to).

    Safe to run again after an interruption: a brand-new database is checked for foreign
    tables under our names before anything is created, and every step creates only what an
    earlier, cut-off run left missing (see :mod:`modeltrail._migrations.ops`).
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
            command.upgrade(alembic_config(conn), revision)
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


def interrupted_creation(bind: Engine | Connection) -> bool:
    """True for a database stamped at an older revision by a creation that never finished.

    A cut during creation on MySQL (DDL commits as it goes) leaves the stamp at whichever step
    ran last. Such a ledger holds no model and no record of a completed creation or upgrade, so
    finishing the creation loses nothing and needs no `modeltrail db upgrade` by hand.
    """
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return interrupted_creation(conn)
    model = bind.execute(select(ModelRow.id).limit(1)).first()
    upgraded = bind.execute(select(AuditEventRow.id).where(AuditEventRow.action == "schema.upgrade").limit(1)).first()
    return model is None and upgraded is None


def newer_message(bind: Engine | Connection, revision: str) -> str:
    url = bind.engine.url.set(query={}).render_as_string(hide_password=True)
    return (
        f"{url} is at schema revision {revision}, which this modeltrail does not know (newest known: "
        f"{head_revision()}): the database was upgraded by a newer modeltrail; upgrade the modeltrail package"
    )
