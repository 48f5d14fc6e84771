"""Issue 14, the store's part: a ledger is never wedged, and a server that goes away or freezes is an outage.

* item 1: a creation cut mid-way (DDL commits as it goes on MariaDB) is finished by the next
  process; a foreign table under one of our names is refused before anything is created.
* item 3: the server closing a connection (``pg_terminate_backend``, ``KILL CONNECTION``) is an
  outage: the work is spooled and replayed, the ``with`` block does not raise.
* item 8: a frozen server (TCP open, no replies) holds no call longer than ``MODELTRAIL_DB_TIMEOUT``.
* item 9: an exception whose text PostgreSQL cannot keep (NUL) still propagates unchanged and
  the training is recorded ``failed``.
* smaller: ``modeltrail db upgrade`` on a database newer than the code is a one-line error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool
from tests.conftest import BACKENDS, make_db_url
from tests.proxy import Proxy

import modeltrail
from modeltrail import _migrations as migrations
from modeltrail import _spool as spool_mod
from modeltrail._errors import SchemaError, SchemaOutdatedError, StorageError, StorageUnavailableError
from modeltrail._schema import VERSION_TABLE, Base
from modeltrail._store import Store
from modeltrail.cli import main

SERVERS = [b for b in ("mysql", "postgres") if b in BACKENDS]


@pytest.fixture(params=SERVERS)
def server_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A brand-new database on each server backend (SQLite has no connection to lose)."""
    yield from make_db_url(request.param, tmp_path)


@pytest.fixture
def proxied(server_url: str) -> Iterator[tuple[str, Proxy]]:
    url = make_url(server_url)
    proxy = Proxy(url.host or "127.0.0.1", url.port or (3306 if server_url.startswith("mysql") else 5432))
    proxy_url = url.set(port=proxy.port).render_as_string(hide_password=False)
    yield proxy_url, proxy
    proxy.thaw()
    proxy.cut()


def in_fresh_process(url: str, body: str) -> Any:
    """Run ``body`` (it has ``tracker`` and sets ``result``) in a new interpreter; returns ``result``."""
    script = "import json, modeltrail\n" + f"tracker = modeltrail.Tracker({url!r})\n" + textwrap.dedent(body)
    script += "\nprint(json.dumps(result))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


READ_BACK = """
(record,) = tracker.trainings("resumed")
result = {
    "status": record.status,
    "version": record.version,
    "params": record.params,
    "steps": [p.step for p in tracker.metric_history(record, "loss")],
}
"""


def assert_schema_is_head(url: str) -> None:
    """Stamped at head, and every table, column and index the models describe is there."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.head_revision()
            context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
            diff = compare_metadata(context, Base.metadata)
            assert [d for d in diff if d[0] != "remove_table"] == []  # tables of others may live beside
    finally:
        engine.dispose()


def table_names(url: str) -> list[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return sorted(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def train(tracker: modeltrail.Tracker, steps: range, *, model: str = "resumed") -> modeltrail.Training:
    with tracker.training(model, params={"lr": 0.1}) as run:
        for step in steps:
            run.log_metric("loss", 1.0 / (step + 1), step=step)
    return run


# ---------------------------------------------------------------------------------------------- item 1
@pytest.mark.parametrize("sends", [4, 12, 30, 60, 100])
def test_item1_creation_cut_mid_way_is_finished_later_and_nothing_is_lost(
    proxied: tuple[str, Proxy], server_url: str, sends: int
) -> None:
    """The connection dies after ``sends`` statements of the creation (MySQL: ~113 in all, PostgreSQL: ~154)."""
    url, proxy = proxied
    proxy.cut_after(sends)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "the database is unreachable ... spool"
        tracker = modeltrail.Tracker(url)  # the creation is cut: this process works offline
        run = train(tracker, range(50))
    assert run.status == "finished"
    proxy.restore()
    assert tracker.sync(timeout=60) == 0  # finishes the creation, then replays the training
    tracker.close()

    assert_schema_is_head(server_url)
    got = in_fresh_process(server_url, READ_BACK)
    assert got == {"status": "finished", "version": 1, "params": {"lr": 0.1}, "steps": list(range(50))}


MODEL_ROW = "INSERT INTO models (id, name, created_at) VALUES (1, 'old-model', '2026-01-01 00:00:00')"


def _first_tables_and_an_empty_stamp(url: str) -> None:
    # What a cut after the third CREATE TABLE leaves on MySQL (and what a refused creation used to leave).
    engine = create_engine(url)
    with engine.begin() as conn:
        for name in ("audit_events", "datasets", "metric_keys"):
            Base.metadata.tables[name].create(conn)
        conn.execute(text(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
    engine.dispose()


def migrate_by_alembic(
    url: str, revision: str, *then: str | Callable[[Connection], object], version_table: str = VERSION_TABLE
) -> None:
    """Migrate with Alembic alone (no audit event: what a cut creation leaves), then run ``then`` in order."""
    from alembic import command

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.alembic_config(conn, version_table), revision)
            for step in then:
                conn.execute(text(step)) if isinstance(step, str) else step(conn)
    finally:
        engine.dispose()


def _creation_cut_in_step_3(url: str) -> None:
    # Steps 1-2 done and recorded as the creation's progress, step 3's table made, then the cut.
    table = Base.metadata.tables["ingested_batches"]
    migrate_by_alembic(url, migrations.revisions()[1], table.create, version_table=migrations.CREATION_TABLE)


def _a_table_without_its_index(url: str) -> None:
    # Every table there, one CREATE INDEX never ran, no stamp written.
    index = next(ix for ix in Base.metadata.tables["trainings"].indexes if ix.name == "ix_trainings_status")
    migrate_by_alembic(url, "head", f"DELETE FROM {VERSION_TABLE}", index.drop)


def test_a_creation_runs_no_step_after_another_process_stamped_the_ledger(mysql_url: str) -> None:
    """Galera races creations (no cluster-wide lock): a creator that finds the ledger stamped after one of its
    steps stops there. Running the rest under the trainers already writing is what hung the CI cluster."""
    store = Store(mysql_url, check=False)
    other = create_engine(mysql_url, poolclass=NullPool)

    @event.listens_for(store.engine, "after_cursor_execute")
    def finish_elsewhere(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith(f"INSERT INTO {migrations.CREATION_TABLE}"):  # the first step is recorded
            with other.begin() as elsewhere:  # meanwhile another process completes and stamps it
                elsewhere.execute(text(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) PRIMARY KEY)"))
                elsewhere.execute(text(f"INSERT INTO {VERSION_TABLE} VALUES ('{migrations.head_revision()}')"))

    try:
        assert migrations.upgrade(store, "head") == (None, migrations.head_revision())
    finally:
        store.close()
        other.dispose()
    made = set(table_names(mysql_url))
    assert "models" in made and "metric_blocks" not in made  # step 1's tables; no later step ran
    assert migrations.CREATION_TABLE in made  # its own progress, left: the stamped ledger never reads it


@pytest.mark.parametrize(
    "leave",
    [_first_tables_and_an_empty_stamp, _creation_cut_in_step_3, _a_table_without_its_index],
    ids=lambda f: f.__name__,
)
def test_item1_leftovers_of_an_interrupted_creation_are_completed_by_the_next_tracker(
    db_url: str, leave: Callable[[str], None]
) -> None:
    leave(db_url)
    run = train(modeltrail.Tracker(db_url), range(20))
    assert run.version is not None and run.version.number == 1
    assert_schema_is_head(db_url)
    assert migrations.CREATION_TABLE not in table_names(db_url)
    got = in_fresh_process(db_url, READ_BACK)
    assert got == {"status": "finished", "version": 1, "params": {"lr": 0.1}, "steps": list(range(20))}


def test_item1_a_ledger_an_older_modeltrail_left_stamped_mid_way_is_fixed_by_db_upgrade(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Older releases stamped every step as they went: a cut left step 2 stamped and step 3's table made."""
    migrate_by_alembic(db_url, migrations.revisions()[1], Base.metadata.tables["ingested_batches"].create)
    with pytest.raises(SchemaOutdatedError, match="modeltrail db upgrade"):
        modeltrail.Tracker(db_url)
    assert main(["db", "upgrade", "--uri", db_url]) == 0, capsys.readouterr().err  # used to fail: already exists
    run = train(modeltrail.Tracker(db_url), range(5))
    assert run.version is not None and run.version.number == 1
    assert_schema_is_head(db_url)


def test_item1_a_used_ledger_at_an_older_revision_still_asks_for_db_upgrade(db_url: str) -> None:
    """Finishing a creation by itself is only for ledgers that never held anything."""
    migrate_by_alembic(db_url, migrations.revisions()[1], MODEL_ROW)
    with pytest.raises(SchemaOutdatedError, match="modeltrail db upgrade"):
        modeltrail.Tracker(db_url)
    assert table_names(db_url).count("ingested_batches") == 0  # nothing was migrated behind the user's back


def test_item1_foreign_models_table_is_refused_before_anything_is_created(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    execute(db_url, "CREATE TABLE models (id INTEGER PRIMARY KEY, title VARCHAR(50))")
    with pytest.raises(SchemaError, match="models") as info:
        modeltrail.Tracker(db_url)
    assert "created nothing" in str(info.value)
    assert table_names(db_url) == ["models"]  # no audit_events, datasets, metric_keys or stamp table left behind

    assert main(["db", "upgrade", "--uri", db_url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modeltrail: error: ") and "models" in err and "Traceback" not in err
    assert table_names(db_url) == ["models"]

    # Once the owner moves their table away, the same database becomes a ledger as usual.
    execute(db_url, "ALTER TABLE models RENAME TO their_models")
    run = train(modeltrail.Tracker(db_url), range(3))
    assert run.version is not None and run.version.number == 1
    assert_schema_is_head(db_url)


def test_item1_upgrade_refuses_a_foreign_table_in_the_way_of_a_new_one(db_url: str) -> None:
    foreign = "CREATE TABLE evaluation_metrics (id INTEGER PRIMARY KEY, score VARCHAR(10))"
    before_evaluations = migrations.revisions().index("0005_evaluations") - 1
    migrate_by_alembic(db_url, migrations.revisions()[before_evaluations], MODEL_ROW, foreign)
    store = Store(db_url, check=False)
    try:
        with pytest.raises(SchemaError, match="evaluation_metrics"):
            store.upgrade()
    finally:
        store.close()
    execute(db_url, "DROP TABLE evaluation_metrics")
    store = Store(db_url, check=False)
    try:
        assert store.upgrade()[1] == migrations.head_revision()  # resumes where the refusal stopped it
    finally:
        store.close()
    assert_schema_is_head(db_url)


# ---------------------------------------------------------------------------------------------- item 3
def backend_id(dbapi_conn: Any) -> int:
    pid = getattr(getattr(dbapi_conn, "info", None), "backend_pid", None)  # psycopg; PyMySQL has thread_id()
    return int(pid) if pid is not None else int(dbapi_conn.thread_id())


def close_from_server(admin_url: str, backend: int) -> None:
    """What a restart, a failover or an operator does: the server ends one session."""
    engine = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if admin_url.startswith("postgresql"):
                conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": backend})
            else:
                conn.execute(text(f"KILL CONNECTION {int(backend)}"))
    finally:
        engine.dispose()


def kill_at(engine: Engine, admin_url: str, prefix: str) -> list[str]:
    """Have the server close the connection just before the first statement starting with ``prefix`` runs."""
    fired: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not fired and statement.lstrip().upper().startswith(prefix):
            fired.append(statement)
            close_from_server(admin_url, backend_id(conn.connection.dbapi_connection))

    return fired


@pytest.mark.parametrize("statement", ["INSERT INTO METRIC_POINTS", "UPDATE TRAININGS"])
def test_item3_server_closing_the_connection_mid_training_is_an_outage(server_url: str, statement: str) -> None:
    """``pg_terminate_backend`` on PostgreSQL, ``KILL CONNECTION`` on MariaDB: spooled, replayed, exactly once."""
    tracker = modeltrail.Tracker(server_url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with tracker.training("resumed", params={"lr": 0.1}) as run:
            for step in range(300):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.flush()
            fired = kill_at(tracker.store.engine, server_url, statement)
            for step in range(300, 600):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.flush()  # raised StorageError here before: the points went to an in-memory list
    assert fired, "the server never closed the connection"
    assert run.status == "finished"
    assert tracker.sync(timeout=60) == 0
    tracker.close()
    got = in_fresh_process(server_url, READ_BACK)
    assert got == {"status": "finished", "version": 1, "params": {"lr": 0.1}, "steps": list(range(600))}


def test_item3_a_killed_query_of_each_driver_is_an_outage(server_url: str) -> None:
    store = Store(server_url)
    sleep = "SELECT pg_sleep(30)" if server_url.startswith("postgresql") else "SELECT SLEEP(30)"
    backend: list[int] = []
    caught: list[BaseException] = []

    def victim() -> None:
        try:
            with store.transaction() as s:
                backend.append(backend_id(s.connection().connection.dbapi_connection))
                s.execute(text(sleep))
        except BaseException as e:
            caught.append(e)

    thread = threading.Thread(target=victim)
    thread.start()
    deadline = time.monotonic() + 10
    while not backend and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # inside the sleep
    close_from_server(server_url, backend[0])
    thread.join(20)
    store.close()
    assert not thread.is_alive()
    (error,) = caught
    assert isinstance(error, StorageUnavailableError), error
    assert "cannot reach the database" in str(error)


class _Orig(Exception):
    """A driver exception as each driver shapes it: MySQL's code in args[0], PostgreSQL's sqlstate."""

    def __init__(self, *args: Any, sqlstate: str | None = None) -> None:
        super().__init__(*args)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("uri", "orig"),
    [
        ("postgresql+psycopg://u@db/x", _Orig("terminating connection due to administrator command", sqlstate="57P01")),
        ("postgresql+psycopg://u@db/x", _Orig("terminating connection due to crash of another", sqlstate="57P02")),
        ("postgresql+psycopg://u@db/x", _Orig("the database system is shutting down", sqlstate="57P03")),
        ("postgresql+psycopg://u@db/x", _Orig("connection failure", sqlstate="08006")),
        ("postgresql+psycopg://u@db/x", _Orig("server closed the connection unexpectedly")),
        ("postgresql+psycopg://u@db/x", _Orig("consuming input failed: EOF detected")),
        ("mysql+pymysql://u@db/x", _Orig(1927, "Connection was killed")),
        ("mysql+pymysql://u@db/x", _Orig(2006, "MySQL server has gone away")),
        ("mysql+pymysql://u@db/x", _Orig(2013, "Lost connection to MySQL server during query")),
        ("mysql+pymysql://u@db/x", _Orig(2014, "Command Out of Sync")),
        ("mysql+pymysql://u@db/x", _Orig(2055, "Lost connection to MySQL server at 'reading initial packet'")),
        ("mysql+pymysql://u@db/x", _Orig(1053, "Server shutdown in progress")),
        ("mysql+pymysql://u@db/x", _Orig(4031, "The client was disconnected by the server because of inactivity")),
    ],
    ids=lambda v: str(getattr(v, "sqlstate", None) or (v.args[0] if isinstance(v, _Orig) else v.split("+")[0])),
)
def test_item3_every_connection_gone_error_is_an_outage(uri: str, orig: _Orig) -> None:
    store = Store(uri, check=False)
    error = store.translate(sa_exc.OperationalError("SELECT 1", {}, orig))
    assert isinstance(error, StorageUnavailableError), error
    refused = store.translate(sa_exc.IntegrityError("INSERT", {}, _Orig(1062, "Duplicate entry", sqlstate="23505")))
    assert type(refused) is StorageError  # a refusal is not an outage


def test_item3_sqlite_has_no_connection_to_lose(sqlite_url: str) -> None:
    store = Store(sqlite_url, check=False)
    error = store.translate(sa_exc.OperationalError("SELECT 1", {}, _Orig("disk I/O error: connection is closed")))
    assert type(error) is StorageError


# ---------------------------------------------------------------------------------------------- item 8
def test_item8_first_write_after_an_unreachable_open_goes_straight_to_the_spool(
    proxied: tuple[str, Proxy], server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening found the server frozen: the training's start and finish wait on it no more (no new
    connection through the proxy); both are spooled and land once it answers."""
    monkeypatch.setenv("MODELTRAIL_DB_TIMEOUT", "2")
    url, proxy = proxied
    modeltrail.Tracker(server_url).close()  # the ledger exists
    proxy.freeze()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tracker = modeltrail.Tracker(url)  # the one attempt that learns the server is away
        opened = proxy.accepted
        run = tracker.training("spooled", params={"lr": 0.1})
        assert proxy.accepted == opened, "the training's start waited on the frozen server again"
        with run:
            run.log_metric("loss", 0.5, step=0)
    assert run.status == "finished" and isinstance(run.version, modeltrail.PendingVersion)
    assert spool_mod.pending(url) > 0
    proxy.thaw()
    assert main(["sync", "--uri", url]) == 0
    (record,) = modeltrail.Tracker(server_url).trainings("spooled")
    assert (record.status, record.version, record.params) == ("finished", 1, {"lr": 0.1})


def test_item8_frozen_server_bounds_finish_and_the_work_replays_after(
    proxied: tuple[str, Proxy], server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TCP stays open, nothing answers: finish() returns within a few bounds and the work waits in the spool."""
    monkeypatch.setenv("MODELTRAIL_DB_TIMEOUT", "2")
    url, proxy = proxied
    tracker = modeltrail.Tracker(url)
    ended: list[float] = []
    outcome: list[BaseException | modeltrail.Training] = []

    def training() -> None:
        try:
            with tracker.training("resumed", params={"lr": 0.1}) as run:
                for step in range(300):
                    run.log_metric("loss", 1.0 / (step + 1), step=step)
                run.flush()
                proxy.freeze()
                for step in range(300, 600):
                    run.log_metric("loss", 1.0 / (step + 1), step=step)
                ended.append(time.monotonic())
            ended.append(time.monotonic())
            outcome.append(run)
        except BaseException as e:
            outcome.append(e)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        thread = threading.Thread(target=training, daemon=True)
        thread.start()
        thread.join(60)  # the old code hung here for good
        assert not thread.is_alive(), "finish() did not return with the server frozen"
    (run,) = outcome
    assert isinstance(run, modeltrail.Training), run
    # About two bounds in practice (~4 s: the write, then a reconnect); ten leave room for a loaded machine.
    assert ended[1] - ended[0] < 20, ended
    # The version is made when the server answers again.
    assert run.status == "finished" and isinstance(run.version, modeltrail.PendingVersion)
    assert spool_mod.pending(url) > 0

    started = time.monotonic()
    with pytest.raises(StorageUnavailableError):
        modeltrail.Tracker(url, spool=False)  # opening a ledger on a frozen server is bounded too
    assert time.monotonic() - started < 20

    proxy.thaw()
    assert tracker.sync(timeout=60) == 0
    tracker.close()
    got = in_fresh_process(server_url, READ_BACK)
    assert got == {"status": "finished", "version": 1, "params": {"lr": 0.1}, "steps": list(range(600))}


def test_item8_timeout_is_configurable_and_checked(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    from modeltrail._errors import ConfigurationError

    assert Store(sqlite_url, check=False).timeout == 30.0
    monkeypatch.setenv("MODELTRAIL_DB_TIMEOUT", "7.5")
    store = Store("mysql+pymysql://u@db/x", check=False)
    assert store.timeout == 7.5
    args = store._timeout_args(store.url)
    assert (args["connect_timeout"], args["read_timeout"], args["write_timeout"]) == (7.5, 7.5, 7.5)
    assert "innodb_lock_wait_timeout" in args["init_command"]
    pg = Store("postgresql+psycopg://u@db/x?connect_timeout=9", check=False)
    assert pg._timeout_args(pg.url) == {}  # what the URL says wins
    for bad in ("0", "-1", "soon", "inf", "nan"):
        monkeypatch.setenv("MODELTRAIL_DB_TIMEOUT", bad)
        with pytest.raises(ConfigurationError, match="MODELTRAIL_DB_TIMEOUT"):
            Store(sqlite_url, check=False)


# ---------------------------------------------------------------------------------------------- item 9
class Boom(Exception):
    pass


def test_item9_exception_text_with_nul_propagates_and_the_training_is_recorded_failed(db_url: str) -> None:
    tracker = modeltrail.Tracker(db_url)
    message = "bad\x00byte in /data/\udc80.csv"
    with pytest.raises(Boom) as caught, tracker.training("nul", params={"lr": 0.1}) as run:
        run.log_metric("loss", 0.5)
        with run.stage("load"):
            raise Boom(message)
    assert caught.value.args == (message,)  # the user's own exception, unchanged
    assert run.status == "failed"
    (record,) = tracker.trainings("nul")
    assert record.status == "failed" and record.version is None and record.ended_at is not None
    assert record.error == "stage 'load' failed: Boom: bad\\x00byte in /data/\\udc80.csv"
    (stage,) = record.stages
    assert (stage.status, stage.error) == ("failed", "Boom: bad\\x00byte in /data/\\udc80.csv")
    assert tracker.metric_history(record, "loss")[0].value == 0.5
    assert tracker.versions("nul") == []


# --------------------------------------------------------------------------------------------- smaller
def test_db_upgrade_against_a_newer_database_is_a_one_line_error(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    modeltrail.Tracker(db_url).close()
    assert main(["db", "upgrade", "--uri", db_url, "--revision", "no_such_revision"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modeltrail: error: ") and "no_such_revision" in err and "Traceback" not in err

    execute(db_url, f"UPDATE {VERSION_TABLE} SET version_num = '0099_from_the_future'")
    assert main(["db", "upgrade", "--uri", db_url]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("modeltrail: error: ") and err.count("\n") == 1, err
    assert "0099_from_the_future" in err and "upgrade the modeltrail package" in err
    assert "Traceback" not in err and "CommandError" not in err and out == ""


def test_schema_lock_held_elsewhere_gives_up_at_its_own_timeout(server_url: str) -> None:
    """Another process holding the schema lock: the wait ends at the lock's timeout with a StorageError
    naming the lock, the connection stays usable, and the lock is taken once it is free."""
    store = Store(server_url, check=False)
    holder = create_engine(server_url, poolclass=NullPool)
    try:
        with holder.connect() as conn:
            if store.dialect == "mysql":
                lock = "SELECT GET_LOCK(CONCAT('modeltrail_schema.', LEFT(MD5({}), 24)), 0)"
                assert conn.execute(text(lock.format("'another_ledger'"))).scalar() == 1
                with store.schema_lock(timeout=1):  # another database's ledger on this server is no obstacle
                    pass
                assert conn.execute(text(lock.format("DATABASE()"))).scalar() == 1
            else:
                assert conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": 0x6D74_7363}).scalar()
            conn.commit()
            with (
                pytest.raises(StorageError, match="timed out waiting for the schema lock"),
                store.schema_lock(timeout=1),
            ):
                pass
        with store.schema_lock(timeout=5):  # the holder's session ended: the lock is free
            assert store.dialect in ("mysql", "postgresql")
    finally:
        holder.dispose()
        store.close()
