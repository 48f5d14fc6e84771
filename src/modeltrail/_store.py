"""Engines, the one transaction helper, dialect quirks and schema checks.

A :class:`Store` is per process and per URL (see :func:`get_store`): objects that
get pickled (sklearn clones, Lightning loggers in spawned workers) carry the URL
and call :func:`get_store` again on the other side, never an engine.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.orm import Session

from ._config import mask_password
from ._errors import (
    ConfigurationError,
    ModeltrailError,
    PermissionDeniedError,
    SchemaError,
    SchemaOutdatedError,
    StorageError,
    StorageUnavailableError,
)

T = TypeVar("T")

# MySQL error codes worth a retry: deadlock, lock wait timeout.
_MYSQL_RETRYABLE = {1213, 1205}
_MYSQL_DENIED = {1044, 1045, 1142, 1143, 1227, 1370}
_MYSQL_UNREACHABLE = {2002, 2003, 2005, 2006, 2013, 2055}
_SCHEMA_LOCK = "modeltrail_schema"
_SCHEMA_LOCK_KEY = 0x6D74_7363  # "mtsc": PostgreSQL advisory lock key


class Store:
    """One database: its engine, its sessions and its schema state."""

    def __init__(
        self,
        uri: str,
        *,
        create: bool = True,
        echo: bool = False,
        offline_ok: bool = False,
        spool_dir: str | os.PathLike[str] | None = None,
        check: bool = True,
    ) -> None:
        """``check=False`` opens a database at whatever revision it is (for ``modeltrail db upgrade``)."""
        self.url = _parse_url(uri)
        self.spool_dir = spool_dir
        self.uri = uri
        self.display_uri = self.url.render_as_string(hide_password=True)
        self.dialect = _dialect_name(self.url)
        self._password = self.url.password or ""
        self.engine = self._make_engine(echo=echo)
        self._create = create
        self._closers: list[Callable[[], None]] = []
        self.schema_ready = False
        #: Why the server could not be reached at open (with ``offline_ok``); the writer spools meanwhile.
        self.unavailable: StorageUnavailableError | None = None
        if not check:
            return
        try:
            self.ensure_schema()
        except StorageUnavailableError as e:
            if not offline_ok:
                raise
            # Writes go to the local spool until the server answers; reads raise meanwhile.
            self.unavailable = e

    def __repr__(self) -> str:
        return f"Store({self.display_uri!r})"

    # ------------------------------------------------------------------ engine
    def _make_engine(self, *, echo: bool) -> Engine:
        url = self.url
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            database = url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, pool_recycle=1800)
            if self.dialect == "mysql" and "charset" not in url.query:
                url = url.update_query_dict({"charset": "utf8mb4"})
        try:
            engine = create_engine(url, **kwargs)
        except sa_exc.NoSuchModuleError as e:
            raise ConfigurationError(
                f"unknown database driver {url.drivername!r} in {self.display_uri}", value=url.drivername
            ) from e
        except (ImportError, sa_exc.ArgumentError) as e:
            raise ConfigurationError(f"cannot use {self.display_uri}: {e}", value=self.display_uri) from e
        if self.dialect == "sqlite":
            _configure_sqlite(engine)
        return engine

    # ------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        """A session in one transaction: commit on success, roll back on error, always close.

        Driver errors leave as :class:`StorageError` subclasses with the password scrubbed.
        On SQLite a writing transaction starts with ``BEGIN IMMEDIATE`` so that two
        writers queue on the busy timeout instead of failing to upgrade their locks.
        """
        session = Session(self.engine, expire_on_commit=False, autoflush=False)
        if self.dialect == "sqlite":
            session.connection(execution_options={"modeltrail_read_only": read_only})
        try:
            yield session
            session.commit()
        except BaseException as e:
            with contextlib.suppress(Exception):
                session.rollback()
            if isinstance(e, sa_exc.DBAPIError):
                raise self.translate(e) from e
            raise
        finally:
            session.close()

    def run(self, work: Callable[[Session], T], *, attempts: int = 6, read_only: bool = False) -> T:
        """Run ``work`` in a transaction, retrying deadlocks and unique-key races with jittered backoff."""
        delay = 0.02
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction(read_only=read_only) as session:
                    return work(session)
            except StorageError as e:
                if attempt == attempts or not self.is_retryable(e):
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def is_retryable(self, error: BaseException) -> bool:
        cause = error.__cause__ if isinstance(error, StorageError) else error
        if isinstance(cause, sa_exc.IntegrityError):
            return True
        if isinstance(cause, sa_exc.DBAPIError):
            code = _mysql_code(cause)
            if code in _MYSQL_RETRYABLE:
                return True
            message = str(cause.orig).lower()
            return "database is locked" in message or "deadlock" in message or "could not serialize" in message
        return False

    def translate(self, error: sa_exc.DBAPIError) -> StorageError:
        """A driver error as modeltrail's own, with the host but never the password."""
        orig = error.orig
        message = self.scrub(f"{type(orig).__name__}: {orig}")
        code = _mysql_code(error)
        pg_code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if code in _MYSQL_DENIED or pg_code == "42501":
            return PermissionDeniedError(f"permission denied on {self.display_uri}: {message}", value=self.display_uri)
        if code in _MYSQL_UNREACHABLE or (
            isinstance(error, sa_exc.OperationalError) and _looks_unreachable(message) and self.dialect != "sqlite"
        ):
            return StorageUnavailableError(
                f"cannot reach the database at {self.display_uri} (host {self.url.host}): {message}",
                value=self.display_uri,
            )
        return StorageError(f"database error on {self.display_uri}: {message}", value=self.display_uri)

    def scrub(self, text_: str) -> str:
        text_ = mask_password(text_)
        if self._password:
            text_ = text_.replace(self._password, "***")
        return text_

    # ------------------------------------------------------------------ schema
    def ensure_schema(self) -> None:
        """Create and stamp a brand-new database; refuse one at another revision.

        Creation happens under a cross-process lock (MySQL ``GET_LOCK``, PostgreSQL
        advisory lock, a lock file beside an SQLite file) so processes opening one new
        database at once do not race.
        """
        from . import _migrations as migrations

        if self.schema_ready:
            return
        try:
            current = migrations.current_revision(self.engine)
            head = migrations.head_revision()
            if current == head:
                self.schema_ready = True
                return
            if current is None and self._create:
                with self.schema_lock():
                    if migrations.current_revision(self.engine) is None:
                        migrations.create_new(self)
                self.schema_ready = True
                return
        except sa_exc.DBAPIError as e:
            raise self.translate(e) from e
        if current is None:
            raise SchemaError(f"{self.display_uri} has no modeltrail schema; run `modeltrail db upgrade`")
        if migrations.is_known(current):
            raise SchemaOutdatedError(
                f"{self.display_uri} is at schema revision {current}, this modeltrail needs {head}: "
                "run `modeltrail db upgrade`",
                value=current,
            )
        raise SchemaError(
            f"{self.display_uri} is at schema revision {current}, which this modeltrail does not know: "
            "upgrade the modeltrail package",
            value=current,
        )

    def upgrade(self, revision: str = "head") -> tuple[str | None, str | None]:
        """Migrate to ``revision``; returns (from, to)."""
        from . import _migrations as migrations

        try:
            with self.schema_lock():
                return migrations.upgrade(self, revision)
        except sa_exc.DBAPIError as e:
            raise self.translate(e) from e

    @contextlib.contextmanager
    def schema_lock(self, timeout: int = 120) -> Iterator[None]:
        if self.dialect == "sqlite":
            database = self.url.database or ""
            if not database or database == ":memory:":
                yield
                return
            from filelock import FileLock

            with FileLock(Path(database).expanduser().resolve().with_suffix(".schema-lock")):
                yield
            return
        release: tuple[Any, dict[str, Any]] | None = None
        with self.engine.connect() as conn:
            if self.dialect == "mysql":
                got = conn.execute(text("SELECT GET_LOCK(:n, :t)"), {"n": _SCHEMA_LOCK, "t": timeout}).scalar()
                if got != 1:
                    raise StorageError(f"timed out waiting for the schema lock on {self.display_uri}")
                release = text("SELECT RELEASE_LOCK(:n)"), {"n": _SCHEMA_LOCK}
            elif self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
                release = text("SELECT pg_advisory_unlock(:k)"), {"k": _SCHEMA_LOCK_KEY}
            conn.commit()
            try:
                yield
            finally:
                if release is not None:
                    conn.execute(*release)
                    conn.commit()

    # ------------------------------------------------------------------ closing
    def on_close(self, closer: Callable[[], None]) -> None:
        """Run ``closer`` when the store closes, before its engine goes: how the writer above is stopped."""
        self._closers.append(closer)

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()
        self.engine.dispose()


# ---------------------------------------------------------------------- cache
_StoreKey = tuple[int, str, bool, bool, "str | None"]
_stores: dict[_StoreKey, Store] = {}
_stores_lock = threading.Lock()


def get_store(
    uri: str,
    *,
    create: bool = True,
    offline_ok: bool = False,
    spool_dir: str | os.PathLike[str] | None = None,
) -> Store:
    """The process's Store for ``uri`` with these options, made on first use.

    The options are part of the key: a read-only caller (``create=False``, no spool) never
    gets a store that another caller opened to create schemas or spool writes.
    """
    key = (os.getpid(), uri, create, offline_ok, os.fspath(spool_dir) if spool_dir is not None else None)
    store = _stores.get(key)
    if store is None:
        with _stores_lock:
            store = _stores.get(key)
            if store is None:
                store = Store(uri, create=create, offline_ok=offline_ok, spool_dir=spool_dir)
                _stores[key] = store
    return store


def release(store: Store) -> None:
    """Drop ``store`` from this process's cache and close it (its writer flushes and stops first)."""
    with _stores_lock:
        for key, value in list(_stores.items()):
            if value is store:
                del _stores[key]
    store.close()


def close_all() -> None:
    """Flush every writer of this process and dispose its engines."""
    with _stores_lock:
        stores = [s for key, s in _stores.items() if key[0] == os.getpid()]
        _stores.clear()
    for store in stores:
        with contextlib.suppress(ModeltrailError):
            store.close()


def _after_fork_in_child() -> None:
    # The parent's engines do not survive fork; drop them unclosed (the writer layer drops its threads).
    for store in list(_stores.values()):
        store.engine.dispose(close=False)
    _stores.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


# -------------------------------------------------------------------- helpers
def _parse_url(uri: str) -> URL:
    try:
        return make_url(uri)
    except sa_exc.ArgumentError as e:
        raise ConfigurationError(f"not a database URL: {mask_password(uri)!r}", value=mask_password(uri)) from e


def _dialect_name(url: URL) -> str:
    backend = url.get_backend_name()
    return "mysql" if backend in ("mysql", "mariadb") else backend


def _mysql_code(error: sa_exc.DBAPIError) -> int | None:
    args = getattr(error.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _looks_unreachable(message: str) -> bool:
    message = message.lower()
    return any(
        s in message
        for s in (
            "connection refused",
            "could not connect",
            "can't connect",
            "timeout expired",
            "server closed",
            "name or service",
        )
    )


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, and BEGIN IMMEDIATE for writers (see :meth:`Store.transaction`)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        with contextlib.suppress(Exception):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("modeltrail_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def upsert(
    conn: Connection | Session,
    table: Any,
    rows: list[dict[str, Any]],
    *,
    keys: list[str],
    update: list[str] | None = None,
) -> None:
    """Insert ``rows``; where the natural ``keys`` exist, update ``update`` columns (or do nothing).

    The one place that knows each dialect's spelling of an upsert.
    """
    if not rows:
        return
    name = (conn.get_bind() if isinstance(conn, Session) else conn).dialect.name
    stmt: Any
    if name in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(table)
        cols = update or keys[:1]  # "do nothing" is an update of a key column to itself
        stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in cols})
    else:
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = (pg_insert if name == "postgresql" else sqlite_insert)(table)
        if update:
            stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update})
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt, rows)
