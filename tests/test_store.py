"""Engines, URLs, errors and the schema's life: creation, revision checks, concurrency."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest
from sqlalchemy import create_engine, text

import modeltrail
from modeltrail import _migrations as migrations
from modeltrail._config import DEFAULT_URI, mask_password, resolve_uri
from modeltrail._errors import ConfigurationError, SchemaError, SchemaOutdatedError, StorageUnavailableError
from modeltrail._schema import VERSION_TABLE, Base
from modeltrail._store import Store, get_store


def test_url_comes_from_argument_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_uri(None) == DEFAULT_URI == "sqlite:///modeltrail.db"
    monkeypatch.setenv("MODELTRAIL_URI", "sqlite:///from-env.db")
    assert resolve_uri(None) == "sqlite:///from-env.db"
    assert resolve_uri("sqlite:///explicit.db") == "sqlite:///explicit.db"


def test_default_tracker_creates_modeltrail_db_in_working_directory(tmp_path) -> None:
    tracker = modeltrail.Tracker()
    with tracker.training("m"):
        pass
    assert (tmp_path / "modeltrail.db").exists()
    tracker.close()


def test_new_database_is_created_and_stamped_at_head(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    modeltrail.Tracker(db_url)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.head_revision()
            # The shipped migrations build exactly the schema the models describe.
            context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
    scripts = ScriptDirectory.from_config(migrations.alembic_config())
    assert scripts.get_current_head() == migrations.head_revision()
    assert [r.revision for r in reversed(list(scripts.walk_revisions()))] == list(migrations.revisions())
    assert migrations.revisions() == migrations.REVISIONS  # the name older callers read


def test_older_revision_names_db_upgrade(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    modeltrail.Tracker(db_url).close()
    known = migrations.revisions()
    monkeypatch.setattr(migrations, "revisions", lambda: (*known, "9000_future"))
    with pytest.raises(SchemaOutdatedError, match="modeltrail db upgrade") as info:
        Store(db_url)
    assert info.value.value == known[-1]


def test_unknown_revision_asks_for_a_newer_package(db_url: str) -> None:
    modeltrail.Tracker(db_url).close()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'zz_from_the_future'"))
    engine.dispose()
    with pytest.raises(SchemaError, match="upgrade the modeltrail package"):
        Store(db_url)


def test_create_false_refuses_an_empty_database(sqlite_url: str) -> None:
    with pytest.raises(SchemaError, match="modeltrail db upgrade"):
        Store(sqlite_url, create=False)


def _open_ledger(url: str, queue: mp.Queue) -> None:
    try:
        tracker = modeltrail.Tracker(url)
        with tracker.training(f"model-{os.getpid()}"):
            pass
        queue.put("ok")
    except Exception as e:
        queue.put(repr(e))


def test_processes_opening_a_new_database_at_once_do_not_race(db_url: str) -> None:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_open_ledger, args=(db_url, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert results == ["ok"] * 4
    tracker = modeltrail.Tracker(db_url)
    assert len(tracker.models()) == 4
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT COUNT(*) FROM {VERSION_TABLE}")).scalar() == 1
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("nosuchdb://host/db", "nosuchdb"),
        ("mysql+nosuchdriver://h/db", "mysql+nosuchdriver"),
        ("not a url", "not a url"),
    ],
)
def test_unknown_driver_or_garbage_url_is_a_configuration_error(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named.replace("+", r"\+")):
        modeltrail.Tracker(url)


def test_unreachable_server_names_host_never_password() -> None:
    url = "mysql+pymysql://alice:s3cr3t-pw@127.0.0.1:1/ledger"
    with pytest.raises(StorageUnavailableError) as info:
        modeltrail.Tracker(url, spool=False)
    message = str(info.value)
    assert "127.0.0.1" in message and "s3cr3t-pw" not in message
    assert "s3cr3t-pw" not in repr(info.value.value)
    # With the spool (the default) the tracker opens and warns once; reads still raise.
    with pytest.warns(RuntimeWarning, match="spool") as caught:
        tracker = modeltrail.Tracker(url)
    assert all("s3cr3t-pw" not in str(w.message) for w in caught)
    with pytest.raises(StorageUnavailableError, match=r"127\.0\.0\.1"):
        tracker.models()


def test_get_store_keys_on_its_options(sqlite_url: str, tmp_path) -> None:
    modeltrail.Tracker(sqlite_url).close()
    writable = get_store(sqlite_url)
    assert get_store(sqlite_url) is writable
    read_only = get_store(sqlite_url, create=False)
    assert read_only is not writable and get_store(sqlite_url, create=False) is read_only
    assert get_store(sqlite_url, offline_ok=True) is not writable
    spooled = get_store(sqlite_url, spool_dir=tmp_path)
    assert spooled is not writable and get_store(sqlite_url, spool_dir=str(tmp_path)) is spooled
    assert spooled.spool_dir == tmp_path


def test_a_tracker_without_spool_never_gets_a_spooling_store() -> None:
    url = "mysql+pymysql://alice:pw@127.0.0.1:1/ledger"
    with pytest.warns(RuntimeWarning, match="spool"):
        modeltrail.Tracker(url)  # opens offline, its writes spooled
    # A caller that wants an answer now (a dashboard, a CLI command) is not handed that store.
    with pytest.raises(StorageUnavailableError, match=r"127\.0\.0\.1"):
        modeltrail.Tracker(url, spool=False)


def test_password_masked_in_reprs() -> None:
    masked = mask_password("see mysql+pymysql://alice:s3cr3t@db.internal/ledger and postgresql://bob:pw2@h/x")
    assert "s3cr3t" not in masked and "pw2" not in masked and "alice:***@db.internal" in masked


def test_tracker_repr_and_pickle_hide_the_connection(sqlite_url: str) -> None:
    import pickle

    tracker = modeltrail.Tracker(sqlite_url)
    clone = pickle.loads(pickle.dumps(tracker))
    assert clone.uri == tracker.uri and clone._store is None
    with clone.training("m"):
        pass
    assert tracker.model("m").latest_version == 1
    secret = modeltrail.Tracker.__new__(modeltrail.Tracker)
    secret.uri = "mysql+pymysql://u:topsecret@h/db"
    assert "topsecret" not in repr(secret)


def test_tls_options_in_the_url_reach_the_driver_and_passwords_stay_masked() -> None:
    url = "mysql+pymysql://alice:pw-secret@db.internal/ledger?ssl_ca=/etc/ssl/ca.pem&ssl_verify_cert=true"
    store = Store(url, check=False)
    try:
        _, kwargs = store.engine.dialect.create_connect_args(store.engine.url)
        assert kwargs["ssl"]["ca"] == "/etc/ssl/ca.pem" and kwargs["ssl_verify_cert"] == "true"
        assert kwargs["charset"] == "utf8mb4"
        assert "pw-secret" not in repr(store) and "pw-secret" not in store.display_uri
        assert "ssl_ca" in store.display_uri
    finally:
        store.close()
