"""Fixtures: a fresh ledger per test on SQLite, MariaDB/MySQL and PostgreSQL.

Server databases get unique names and are dropped afterwards. With ``CI=true`` a
missing server fails the run instead of skipping. ``MODELTRAIL_TEST_BACKENDS``
(comma-separated: sqlite,mysql,postgres) narrows the backends for a quick local run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

import modeltrail
from modeltrail import _store as store_mod

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
MYSQL_ADMIN = os.environ.get("MODELTRAIL_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
PG_ADMIN = os.environ.get("MODELTRAIL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = [b.strip() for b in os.environ.get("MODELTRAIL_TEST_BACKENDS", "sqlite,mysql,postgres").split(",") if b]
if CI and not {"sqlite", "mysql", "postgres"} <= set(BACKENDS):
    raise pytest.UsageError("CI runs every backend; do not narrow MODELTRAIL_TEST_BACKENDS there")


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable: {error}"
    if CI:
        pytest.fail(message + " (CI=true: servers are required)")
    pytest.skip(message)


def _server_database(admin_url: str, backend: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"mt_test_{uuid.uuid4().hex[:12]}"
    isolation = {"isolation_level": "AUTOCOMMIT"}
    engine = create_engine(admin_url, **isolation)
    try:
        with engine.connect() as conn:
            charset = " CHARACTER SET utf8mb4" if backend == "mysql" else ""
            conn.execute(text(f"CREATE DATABASE {name}{charset}"))
    except Exception as e:
        engine.dispose()
        _unavailable(backend, e)
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        store_mod.close_all()
        with engine.connect() as conn:
            if backend == "postgres":
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


def make_db_url(backend: str, tmp_path: os.PathLike[str]) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{os.path.join(os.fspath(tmp_path), 'ledger.db')}"
        store_mod.close_all()
    elif backend == "mysql":
        yield from _server_database(MYSQL_ADMIN, "mysql")
    elif backend == "postgres":
        yield from _server_database(PG_ADMIN, "postgres")
    else:
        raise ValueError(backend)


@pytest.fixture(params=[b for b in ("sqlite", "mysql", "postgres") if b in BACKENDS])
def db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A URL of a brand-new, empty database on each backend."""
    yield from make_db_url(request.param, tmp_path)


@pytest.fixture(params=[b for b in ("sqlite", "mysql") if b in BACKENDS])
def db_url_sqlite_mysql(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """The two backends the framework adapters are proven on."""
    yield from make_db_url(request.param, tmp_path)


@pytest.fixture
def mysql_url(tmp_path: os.PathLike[str]) -> Iterator[str]:
    if "mysql" not in BACKENDS:
        pytest.skip("mysql backend deselected")
    yield from make_db_url("mysql", tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> Iterator[str]:
    yield from make_db_url("sqlite", tmp_path)


@pytest.fixture
def tracker(db_url: str) -> Iterator[modeltrail.Tracker]:
    t = modeltrail.Tracker(db_url)
    yield t
    t.close()


def _count_rows(url: str, table: str, where: str = "") -> int:
    """Rows of a ledger table as any other client sees them: a fresh engine, committed data only."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT COUNT(*) FROM {table} {where}")).scalar_one())
    finally:
        engine.dispose()


def _row_counts(url: str) -> dict[str, int]:
    """Every ledger table's row count: compare before and after to prove what changed (or that nothing did)."""
    from modeltrail._schema import Base

    return {name: _count_rows(url, name) for name in sorted(Base.metadata.tables)}


@pytest.fixture
def count_rows() -> Callable[..., int]:
    """``count_rows(url, "metric_points", "WHERE ...")``: committed rows of one table."""
    return _count_rows


@pytest.fixture
def row_counts() -> Callable[[str], dict[str, int]]:
    """``row_counts(url)``: every table's row count, to compare before and after."""
    return _row_counts


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]) -> None:
    """No test reads the developer's MODELTRAIL_URI or writes ./modeltrail.db."""
    monkeypatch.delenv("MODELTRAIL_URI", raising=False)
    monkeypatch.setenv("MODELTRAIL_SPOOL_DIR", os.path.join(os.fspath(tmp_path), "spool"))
    monkeypatch.chdir(tmp_path)
