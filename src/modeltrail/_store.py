"""Engines, the one transaction helper, dialect quirks and schema checks.

A :class:`Store` is per process and per URL (see :func:`get_store`): objects that
get pickled (sklearn clones, Lightning loggers in spawned workers) carry the URL
and call :func:`get_store` again on the other side, never an engine.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
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
from ._values import env_seconds

T = TypeVar("T")

# MySQL error codes worth a retry: deadlock (on Galera also a certification failure at commit, or
# a brute-force abort by a replicated write), lock wait timeout.
_MYSQL_RETRYABLE = {1213, 1205}
# On a Galera node (only: elsewhere 1047 is "unknown command"), "WSREP has not yet prepared node for
# application use": a node out of the primary component. The connection is dropped so that the
# retry reconnects, through a proxy to another node.
_WSREP_NOT_READY = 1047
#: On a Galera node a transaction's retries go on longer: certification failures are routine when
#: trainers write one model's versions through different nodes (at least one wins each round).
_GALERA_ATTEMPTS = 20
_MYSQL_DENIED = {1044, 1045, 1142, 1143, 1227, 1370}
# The connection is gone or never came: server shutting down (1053), connection killed (1927),
# cannot connect (2002/2003/2005), gone away (2006), lost during a query (2013), out of sync after
# a broken read (2014), lost during the handshake (2055), disconnected for inactivity (4031).
_MYSQL_GONE = {1053, 1927, 2002, 2003, 2005, 2006, 2013, 2014, 2055, 4031}
# PostgreSQL: admin_shutdown (restart, failover, pg_terminate_backend), crash_shutdown,
# cannot_connect_now (starting up or shutting down); plus the whole class 08, connection exception.
_PG_GONE = {"57P01", "57P02", "57P03"}
#: Seconds any one call to a database server may take before the work goes to the spool.
ENV_TIMEOUT = "MODELTRAIL_DB_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
_SCHEMA_LOCK = "modeltrail_schema"  # MySQL: + "." + the database's hash (GET_LOCK names are server-wide)
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
        #: The bound on each call to a server (connect, statement, commit); None while an upgrade runs.
        self.timeout = db_timeout()
        self._timeout_now: float | None = self.timeout
        #: True once a connection found a Galera node (``@@wsrep_on``); set on the first connect.
        self.galera = False
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
            if self.dialect != "sqlite":
                kwargs["connect_args"] = self._timeout_args(url)
            engine = create_engine(url, **kwargs)
        except sa_exc.NoSuchModuleError as e:
            raise ConfigurationError(
                f"unknown database driver {url.drivername!r} in {self.display_uri}", value=url.drivername
            ) from e
        except (ImportError, sa_exc.ArgumentError) as e:
            raise ConfigurationError(f"cannot use {self.display_uri}: {e}", value=self.display_uri) from e
        if self.dialect == "sqlite":
            _configure_sqlite(engine)
        else:
            self._bound_calls(engine)
        if self.dialect == "mysql":
            self._watch_galera(engine)
        return engine

    def _watch_galera(self, engine: Engine) -> None:
        """Find out, per connection, whether the server is a Galera node, and make its reads causal.

        On a Galera node a read may not yet see a write committed through another node (the
        cluster certifies synchronously but applies asynchronously), and behind a proxy two
        connections of one process may reach two nodes. ``wsrep_sync_wait=1`` makes each read
        wait until the node has applied everything committed before it: every session starts so;
        the bulk point writer turns it off (see :meth:`transaction`). 1047 (node not ready) is
        treated as a lost connection, so that the pool drops it and the retry reconnects.
        """

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, record: Any) -> None:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("SELECT @@wsrep_on")
                row = cursor.fetchone()
            except Exception:  # not MariaDB, or no wsrep: a plain server
                row = None
            galera = bool(row and row[0] in (1, "1", "ON"))
            if galera:
                cursor.execute(f"SET SESSION wsrep_sync_wait = {_CAUSAL}")
                record.info["wsrep_sync_wait"] = _CAUSAL
                self.galera = True
            cursor.close()
            record.info["galera"] = galera

        @event.listens_for(engine, "handle_error")
        def _on_error(context: Any) -> None:
            args = getattr(context.original_exception, "args", ())
            if args and args[0] == _WSREP_NOT_READY and self.galera:
                context.is_disconnect = True

    def _timeout_args(self, url: URL) -> dict[str, Any]:
        """Connect arguments that bound every wait on the server (those the URL sets win).

        A frozen server (TCP open, no replies) would otherwise hold ``finish()`` forever. PyMySQL
        bounds reads and writes itself; psycopg waits are bounded by :func:`_bounded_pg_connection`.
        """
        timeout = self.timeout
        args: dict[str, Any] = {}
        if url.get_driver_name() == "pymysql":
            args = {"connect_timeout": timeout, "read_timeout": timeout, "write_timeout": timeout}
            # Lock waits end (error 1205, retried) before the read timeout takes them for an outage.
            lock_wait = max(1, math.floor(timeout * 0.8))
            args["init_command"] = (
                f"SET SESSION innodb_lock_wait_timeout = LEAST(@@SESSION.innodb_lock_wait_timeout, {lock_wait})"
            )
        elif self.dialect == "postgresql":
            args = {"connect_timeout": max(2, math.ceil(timeout))}  # libpq's own minimum is 2 s
        return {k: v for k, v in args.items() if k not in url.query}

    def _bound_calls(self, engine: Engine) -> None:
        """Put the current bound on each connection as it leaves the pool (lifted while an upgrade runs)."""
        pg_connection = _bounded_pg_connection() if engine.dialect.driver == "psycopg" else None
        if pg_connection is not None:

            @event.listens_for(engine, "do_connect")
            def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
                return pg_connection.connect(*cargs, **cparams)

        @event.listens_for(engine, "checkout")
        def _checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
            timeout = self._timeout_now
            if engine.dialect.driver == "pymysql":
                dbapi_conn._read_timeout = dbapi_conn._write_timeout = timeout
            elif pg_connection is not None:
                dbapi_conn.call_timeout = timeout

    @contextlib.contextmanager
    def unbounded(self) -> Iterator[None]:
        """Calls made meanwhile may take as long as they take: a migration of a large table does."""
        self._timeout_now = None
        try:
            yield
        finally:
            self._timeout_now = self.timeout

    # ------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def transaction(self, *, read_only: bool = False, causal: bool = True) -> Iterator[Session]:
        """A session in one transaction: commit on success, roll back on error, always close.

        Driver errors leave as :class:`StorageError` subclasses with the password scrubbed.
        On SQLite a writing transaction starts with ``BEGIN IMMEDIATE`` so that two
        writers queue on the busy timeout instead of failing to upgrade their locks.
        ``causal=False`` lets a transaction on a Galera node read without first waiting for the
        node to catch up with the cluster: only for work whose unique keys catch a stale read
        (the bulk point writer's batch ids), where the wait would only slow ingest.
        """
        session = Session(self.engine, expire_on_commit=False, autoflush=False)
        try:
            if self.dialect == "sqlite":  # BEGIN IMMEDIATE may meet a locked database: translated, retried
                session.connection(execution_options={"modeltrail_read_only": read_only})
            elif self.galera:
                _set_sync_wait(session.connection(), _CAUSAL if causal else 0)
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

    def run(
        self, work: Callable[[Session], T], *, attempts: int = 6, read_only: bool = False, causal: bool = True
    ) -> T:
        """Run ``work`` in a transaction, retrying deadlocks and unique-key races with jittered backoff.

        On a Galera node certification failures (a deadlock error at commit) are such races too,
        and get more attempts (:data:`_GALERA_ATTEMPTS`); ``causal`` as in :meth:`transaction`.
        """
        delay = 0.02
        if self.galera and attempts > 1:
            attempts = max(attempts, _GALERA_ATTEMPTS)
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction(read_only=read_only, causal=causal) as session:
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
            if code in _MYSQL_RETRYABLE or (code == _WSREP_NOT_READY and self.galera):
                return True
            message = str(cause.orig).lower()
            # On Galera, 1180 "... (provider status: Not connected to Primary Component)" ends a COMMIT in flight when
            # its node is cut off from the cluster: an outage to retry, like 1047, never a refusal of the data.
            return (
                "database is locked" in message
                or "deadlock" in message
                or "could not serialize" in message
                or (self.galera and "not connected to primary component" in message)
            )
        return False

    def is_busy(self, error: BaseException) -> bool:
        """Still locked or deadlocked after :meth:`run`'s retries: the database is busy, not refusing.

        Such work is kept (queued, spooled, replayed), never reported as refused; a unique-key
        error is a refusal once retries are spent. On a busy Galera cluster a version's
        certification can lose many rounds in a row.
        """
        return self.is_retryable(error) and not isinstance(error.__cause__, sa_exc.IntegrityError)

    def translate(self, error: sa_exc.DBAPIError) -> StorageError:
        """A driver error as modeltrail's own, with the host but never the password."""
        orig = error.orig
        message = self.scrub(f"{type(orig).__name__}: {orig}")
        code = _mysql_code(error)
        pg_code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if code in _MYSQL_DENIED or pg_code == "42501":
            return PermissionDeniedError(f"permission denied on {self.display_uri}: {message}", value=self.display_uri)
        if self.connection_gone(error):
            return StorageUnavailableError(
                f"cannot reach the database at {self.display_uri} (host {self.url.host}): {message}",
                value=self.display_uri,
            )
        return StorageError(f"database error on {self.display_uri}: {message}", value=self.display_uri)

    def connection_gone(self, error: sa_exc.DBAPIError) -> bool:
        """True when the server cannot be reached or dropped the connection: an outage, not a refusal.

        Such work is spooled and replayed; SQLite has no connection to lose.
        """
        if self.dialect == "sqlite":
            return False
        if error.connection_invalidated or _mysql_code(error) in _MYSQL_GONE:
            return True
        sqlstate = str(getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None) or "")
        if sqlstate.startswith("08") or sqlstate in _PG_GONE:
            return True
        gone = isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError))
        return gone and _looks_unreachable(str(error.orig))

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
        database at once do not race. A creation that a cut connection interrupted (on
        MySQL, DDL commits as it goes) leaves no stamp, so the next process finishes it.
        A Galera cluster has no ``GET_LOCK``: there creation is raced and retried (see
        :meth:`_create_racing`).
        """
        from . import _migrations as migrations

        if self.schema_ready:
            return
        try:
            current = migrations.current_revision(self.engine)
            head = migrations.head_revision()
            if current is None and self._create and self.galera:
                current = self._create_racing()
            elif current is None and self._create:
                with self.schema_lock():
                    current = migrations.current_revision(self.engine)
                    if current is None:
                        migrations.create_new(self)
                        current = head
        except sa_exc.DBAPIError as e:
            raise self.translate(e) from e
        if current == head:
            self.schema_ready = True
            return
        if current is None:
            raise SchemaError(f"{self.display_uri} has no modeltrail schema; run `modeltrail db upgrade`")
        if migrations.is_known(current):
            raise SchemaOutdatedError(
                f"{self.display_uri} is at schema revision {current}, this modeltrail needs {head}: "
                "run `modeltrail db upgrade`",
                value=current,
            )
        raise SchemaError(migrations.newer_message(self.engine, current), value=current)

    def _create_racing(self, attempts: int = 10) -> str | None:
        """Create the schema on a Galera cluster, where no lock serialises two creating processes.

        ``GET_LOCK`` is not replicated (each node would grant it), so two processes opening one
        new database through two nodes both create. Creation is idempotent and resumable (each
        step makes only what is missing, the stamp comes last), and DDL is applied in one total
        order across the cluster, so the loser's step fails ("already exists", a stamp row that
        moved, a certification failure): it re-reads the stamp and resumes, until a stamp is there.
        No step runs once the ledger is stamped (creation checks between steps; a creator seen between its
        last step and its stamp is waited for): the stamp lets trainers write, and DDL under their writes
        hangs a Galera cluster (a DDL waiting on a metadata lock an applier holds while that applier waits
        for the DDL's turn; seen in CI with 16 trainers opening one new ledger through three nodes).
        """
        from alembic.util import CommandError

        from . import _migrations as migrations

        delay = 0.05
        for attempt in range(1, attempts + 1):
            try:
                current = migrations.current_revision(self.engine)
                if current is None and migrations.creation_in_flight(self.engine):
                    current = self._stamp_within(5.0)  # a creator about to stamp: never redo its steps under it
                if current is not None:
                    return current
                migrations.create_new(self)
                return migrations.current_revision(self.engine) or migrations.head_revision()
            except (sa_exc.DBAPIError, SchemaError) as e:
                if isinstance(e, sa_exc.DBAPIError):  # an outage or a refusal is not a race
                    raced = not self.connection_gone(e) and _mysql_code(e) not in _MYSQL_DENIED
                else:  # a stamp another process moved; foreign tables are refused at once
                    raced = isinstance(e.__cause__, CommandError)
                if attempt == attempts or not raced:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def _stamp_within(self, seconds: float) -> str | None:
        """The stamp, once it appears within ``seconds``; None if it does not (its creator died: go on)."""
        from . import _migrations as migrations

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.1)
            current = migrations.current_revision(self.engine)
            if current is not None:
                return current
        return None

    def upgrade(self, revision: str = "head") -> tuple[str | None, str | None]:
        """Migrate to ``revision``; returns (from, to)."""
        from . import _migrations as migrations

        try:
            with self.unbounded(), self.schema_lock():
                return migrations.upgrade(self, revision)
        except sa_exc.DBAPIError as e:
            raise self.translate(e) from e

    @contextlib.contextmanager
    def schema_lock(self, timeout: int = 120) -> Iterator[None]:
        """Serialise schema changes across processes; on Galera there is no such lock (see README).

        A Galera node accepts ``GET_LOCK`` but grants it locally only, which would pretend a
        safety it does not give: creation races instead (:meth:`_create_racing`), and an upgrade
        is an operator's single command whose steps are resumable.
        """
        if self.galera:
            yield
            return
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
        if self._timeout_now is not None:  # give up on the lock before the call's own bound does
            timeout = max(1, min(timeout, math.floor(self._timeout_now) - 1))
        with self.engine.connect() as conn:
            if self.dialect == "mysql":
                # GET_LOCK names are server-wide: one per database, or ledgers on one server wait on each other.
                name = conn.execute(text(f"SELECT CONCAT('{_SCHEMA_LOCK}.', LEFT(MD5(DATABASE()), 24))")).scalar()
                got = conn.execute(text("SELECT GET_LOCK(:n, :t)"), {"n": name, "t": timeout}).scalar()
                if got != 1:
                    raise StorageError(f"timed out waiting for the schema lock on {self.display_uri}")
                release = text("SELECT RELEASE_LOCK(:n)"), {"n": name}
            elif self.dialect == "postgresql":
                # pg_advisory_lock would wait until the call's own bound ends it as a lost connection;
                # polling the try-variant gives up at ``timeout`` like GET_LOCK, with the same error.
                deadline = time.monotonic() + timeout
                try_lock = text("SELECT pg_try_advisory_lock(:k)"), {"k": _SCHEMA_LOCK_KEY}
                while not conn.execute(*try_lock).scalar():
                    conn.commit()
                    if time.monotonic() >= deadline:
                        raise StorageError(f"timed out waiting for the schema lock on {self.display_uri}")
                    time.sleep(min(0.05 + random.random() * 0.2, max(0.0, deadline - time.monotonic())))
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
#: How many holders (Trackers) share each cached store, by ``id(store)``.
_holders: dict[int, int] = {}


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
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = Store(uri, create=create, offline_ok=offline_ok, spool_dir=spool_dir)
        _holders[id(store)] = _holders.get(id(store), 0) + 1
    return store


def release(store: Store) -> bool:
    """One holder (a Tracker) lets go of ``store``; the last one closes it (its writer flushes and stops first).

    Trackers for the same URL and options share one store and one writer, so closing one must not
    stop the writer another one's running training still logs into. True when the store was closed.
    """
    with _stores_lock:
        left = _holders.get(id(store), 1) - 1
        if left > 0:
            _holders[id(store)] = left
            return False
        _holders.pop(id(store), None)
        for key, value in list(_stores.items()):
            if value is store:
                del _stores[key]
    store.close()
    return True


def close_all() -> None:
    """Flush every writer of this process and dispose its engines."""
    with _stores_lock:
        stores = [s for key, s in _stores.items() if key[0] == os.getpid()]
        _stores.clear()
        _holders.clear()
    for store in stores:
        with contextlib.suppress(ModeltrailError):
            store.close()


def _after_fork_in_child() -> None:
    # The parent's engines do not survive fork; drop them unclosed (the writer layer drops its threads).
    for store in list(_stores.values()):
        store.engine.dispose(close=False)
    _stores.clear()
    _holders.clear()


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


#: ``wsrep_sync_wait`` for causal reads: wait before SELECT, SHOW and BEGIN.
_CAUSAL = 1


def _set_sync_wait(conn: Connection, value: int) -> None:
    """Set ``wsrep_sync_wait`` on a Galera connection, only when it differs from what it has."""
    info = conn.info
    if info.get("galera") and info.get("wsrep_sync_wait") != value:
        conn.exec_driver_sql(f"SET SESSION wsrep_sync_wait = {value}")
        info["wsrep_sync_wait"] = value


def _mysql_code(error: sa_exc.DBAPIError) -> int | None:
    args = getattr(error.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


_GONE_MESSAGES = (
    "connection refused",
    "could not connect",
    "can't connect",
    "timeout expired",
    "server closed",
    "name or service",
    "terminating connection",
    "connection is closed",
    "connection is lost",
    "connection reset",
    "consuming input failed",
    "could not receive data",
    "could not send data",
    "no connection to the server",
    "ssl syscall error",
    "broken pipe",
    "lost connection",
    "gone away",
    "no answer from the database server",
)


def _looks_unreachable(message: str) -> bool:
    message = message.lower()
    return any(s in message for s in _GONE_MESSAGES)


def db_timeout() -> float:
    """``MODELTRAIL_DB_TIMEOUT`` in seconds (default 30): the longest any one call to a server may take."""
    return env_seconds(ENV_TIMEOUT, DEFAULT_TIMEOUT)


@lru_cache(maxsize=1)
def _bounded_pg_connection() -> Any:
    """A psycopg connection class whose every wait on the server ends after ``call_timeout`` seconds.

    Neither a server-side ``statement_timeout`` nor TCP keepalives end a wait on a server that
    is frozen (or a proxy in front of it that still acknowledges packets): only the client can.
    On expiry the connection is closed, as its state is unknown, and the error says it is gone.
    None with a psycopg too old to bound its waits (before 3.2), which then waits as before.
    """
    import psycopg

    wait_timeout: type[Exception] | None = getattr(psycopg.errors, "_WaitTimeout", None)
    if wait_timeout is None or "timeout" not in inspect.signature(psycopg.Connection.wait).parameters:
        return None
    expired: type[Exception] = wait_timeout

    class BoundedConnection(psycopg.Connection[Any]):
        call_timeout: float | None = None

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            if timeout is not None or self.call_timeout is None:
                return super().wait(gen, interval, timeout)
            try:
                return super().wait(gen, interval, self.call_timeout)
            except expired as e:
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    f"no answer from the database server within {self.call_timeout:g}s; the connection is closed"
                ) from e

    return BoundedConnection


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
