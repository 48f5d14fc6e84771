"""The three-node Galera cluster behind HAProxy that `.ci/cluster start` runs, as the tests reach it.

Tests marked ``cluster`` skip when it is not up, and fail instead with ``CI=true`` (as the
MySQL and PostgreSQL tests do): `.ci/run` starts it and exports the URLs read here. Trainer
processes (:func:`train`) live here so that spawned children import them by module name.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PROXY_URL = os.environ.get("MODELTRAIL_CLUSTER_URL", "mysql+pymysql://root@127.0.0.1:4300/")
NODE_URLS = os.environ.get(
    "MODELTRAIL_CLUSTER_NODES",
    "mysql+pymysql://root@127.0.0.1:4306/,mysql+pymysql://root@127.0.0.1:4307/,mysql+pymysql://root@127.0.0.1:4308/",
).split(",")
SCRIPT = os.environ.get("MODELTRAIL_CLUSTER_SCRIPT", str(Path(__file__).resolve().parents[1] / ".ci" / "cluster"))
#: How long any one wait in these tests may last before it is a failure (never a duration assert).
WAIT = float(os.environ.get("MODELTRAIL_CLUSTER_WAIT", "300"))


@dataclasses.dataclass(frozen=True)
class ClusterDB:
    """One fresh database on the cluster: its URL through the proxy and through each node."""

    name: str
    proxy: str
    nodes: tuple[str, ...]


def _with_db(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def scalar(url: str, sql: str, **params: Any) -> Any:
    """One value read through ``url`` by a fresh connection (committed data only).

    The read is causal (``wsrep_sync_wait``): on a node it sees every write the cluster committed
    before it, including DDL made through another node; a plain MariaDB accepts and ignores it.
    """
    engine = create_engine(
        url, isolation_level="AUTOCOMMIT", connect_args={"init_command": "SET SESSION wsrep_sync_wait = 1"}
    )
    try:
        with engine.connect() as conn:
            result = conn.execute(text(sql), params)
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``check`` until it holds. A database error is "not yet", not a failure: a node that a fault
    test restarted may refuse a while (1047) or be slow to catch up with the cluster, so that a causal
    read gives up (1205, on a loaded machine). The last such error is in the message if time runs out."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            if check():
                return
        except DBAPIError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what}" + (f" (last: {last})" if last else "")
            )
        time.sleep(0.3)


def _answers(url: str) -> bool:
    try:
        return scalar(url, "SELECT @@wsrep_on") == 1
    except Exception:
        return False


def require_cluster() -> None:
    """Skip (fail under CI) unless the proxy and all three nodes answer as Galera nodes."""
    urls = (PROXY_URL, *NODE_URLS)
    down = [url for url in urls if not _answers(url)]
    # A node that a fault test just restarted answers "not yet prepared" (1047) for a moment after it is Synced.
    deadline = time.monotonic() + (60 if CI else 0)
    while down and time.monotonic() < deadline:
        time.sleep(1)
        down = [url for url in urls if not _answers(url)]
    if down:
        message = f"the Galera cluster is not up ({', '.join(down)} do not answer; run .ci/cluster start)"
        if CI:
            pytest.fail(message + " (CI=true: the cluster is required)")
        pytest.skip(message)


def cluster_database() -> Iterator[ClusterDB]:
    """A new database, visible on every node before it is handed out, dropped afterwards."""
    from modeltrail import _store as store_mod

    require_cluster()
    name = f"mt_cluster_{uuid.uuid4().hex[:12]}"
    scalar(NODE_URLS[0], f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    # DDL is applied on the other nodes in total order but not at once: wait until each has it.
    for node in NODE_URLS:
        wait_until(lambda node=node: scalar(node, "SELECT COUNT(*) FROM information_schema.schemata WHERE "
                                            "schema_name = :n", n=name) == 1, f"{name} on {node}")  # fmt: skip
    try:
        yield ClusterDB(name, _with_db(PROXY_URL, name), tuple(_with_db(u, name) for u in NODE_URLS))
    finally:
        store_mod.close_all()
        restore()
        scalar(NODE_URLS[0], f"DROP DATABASE IF EXISTS {name}")


def create_ledger(db: ClusterDB) -> None:
    """Create the ledger's schema through the proxy and wait until every node holds its tables.

    ``spool=False``: a proxy that does not answer is retried here, never a ledger silently left
    uncreated (an offline Tracker would open fine and create nothing, and the tests' first count of
    points would find no table).
    """
    import modeltrail
    from modeltrail._errors import StorageError

    def created() -> bool:
        try:
            modeltrail.Tracker(db.proxy, spool=False).close()
        except StorageError:
            return False
        return True

    wait_until(created, f"the ledger {db.name} to be created through the proxy")
    for node in db.nodes:
        wait_until(lambda node=node: scalar(node, "SELECT COUNT(*) FROM information_schema.tables WHERE "
                                            "table_schema = :n AND table_name = 'metric_points'", n=db.name) == 1,
                   f"the ledger's tables on {node}")  # fmt: skip


def point_count(url: str) -> int:
    """How many metric points the node (or proxy) at ``url`` holds, read causally."""
    return int(scalar(url, "SELECT COUNT(*) FROM metric_points"))


def control(*args: str) -> str:
    """Run `.ci/cluster ARGS` (kill, restart, isolate or rejoin a node, cut or restore the proxy); its output."""
    done = subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=WAIT, check=False)
    if done.returncode != 0:
        raise AssertionError(f".ci/cluster {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


def restore() -> None:
    """Bring back whatever a fault test took down or cut off: every node Synced in the cluster, the proxy up."""
    for n in ("1", "2", "3"):
        control("start-node", n)
        control("rejoin", n)  # a no-op for a node that was never isolated
    control("start-proxy")


def node_state(index: int) -> tuple[str, int]:
    """(wsrep_local_state_comment, wsrep_cluster_size) of node ``index`` (0-based)."""
    engine = create_engine(NODE_URLS[index])
    try:
        with engine.connect() as conn:
            status = dict(conn.execute(text("SHOW STATUS LIKE 'wsrep_%'")).all())
        return str(status["wsrep_local_state_comment"]), int(status["wsrep_cluster_size"])
    finally:
        engine.dispose()


def component(index: int) -> str:
    """``wsrep_cluster_status`` of node ``index`` (0-based): Primary, or non-Primary while it is cut off.

    A bare driver connection: SHOW works on a node outside the primary component, where most other
    statements (even the ROLLBACK an SQLAlchemy engine sends on its first connect) get error 1047.
    """
    import pymysql

    url = make_url(NODE_URLS[index])
    conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password or "")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW STATUS LIKE 'wsrep_cluster_status'")
            return str(cur.fetchone()[1])
    finally:
        conn.close()


def refusal(url: str, sql: str) -> int | None:
    """The MySQL error code with which the server at ``url`` refuses ``sql`` (a plain read); None if it answers."""
    import pymysql

    parts = make_url(url)
    conn = pymysql.connect(host=parts.host, port=parts.port or 3306, user=parts.username,
                           password=parts.password or "", database=parts.database)  # fmt: skip
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
        return None
    except pymysql.err.MySQLError as e:
        return int(e.args[0])
    finally:
        conn.close()


def proxy_targets(connections: int) -> set[str]:
    """The nodes that ``connections`` new connections through the proxy, all open at once, reach.

    With ``balance leastconn`` connections held open together spread over every server the proxy
    deems up, so a node missing from the answer is one it does not send clients to.
    """
    import pymysql

    url = make_url(PROXY_URL)
    conns = [
        pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password or "")
        for _ in range(connections)
    ]
    try:
        names = set()
        for conn in conns:
            with conn.cursor() as cur:
                cur.execute("SELECT @@wsrep_node_name")
                names.add(str(cur.fetchone()[0]))
        return names
    finally:
        for conn in conns:
            conn.close()


def proxy_avoids(node: str) -> bool:
    """Whether new connections through the proxy stay off ``node`` (a ``wsrep_node_name``).

    False while the proxy is still marking it down: a probe that landed there may be cut mid-query
    (``on-marked-down shutdown-sessions``), which says the proxy is only now acting on it.
    """
    import pymysql

    try:
        return node not in proxy_targets(6)
    except pymysql.err.MySQLError:
        return False


# ---------------------------------------------------------------- trainers
def train(
    url: str,
    model: str,
    worker: int,
    trainings: int,
    points: int,
    pause: float,
    results: mp.Queue,
    start: Any = None,
    hold: Any = None,
) -> None:
    """One trainer process: ``trainings`` trainings of ``model``, ``points`` loss points each.

    With ``hold`` (an event), it waits for it before its last 100 points and the last finish: whatever a
    fault test does before releasing it, some of every trainer's work comes after it, however slow the machine.
    It reports ("ok", worker, spool entries left after a final sync) or ("error", worker, text):
    the test asserts that no error reached the trainer and that nothing was left unwritten.
    """
    import modeltrail

    try:
        if start is not None:
            start.wait(WAIT)
        tracker = modeltrail.Tracker(url)
        for t in range(trainings):
            with tracker.training(model, params={"worker": worker, "t": t}) as run:
                for step in range(points):
                    if hold is not None and t == trainings - 1 and step == max(points - 100, 0):
                        hold.wait(WAIT)
                    run.log_metric("loss", 1.0 / (step + 1) + worker, step=step)
                    if pause and step % 100 == 99:
                        time.sleep(pause)
        left = tracker.sync(timeout=WAIT)
        deadline = time.monotonic() + WAIT
        while left and time.monotonic() < deadline:  # the server may still be coming back
            time.sleep(1.0)
            left = tracker.sync(timeout=WAIT)
        tracker.close()
        results.put(("ok", worker, left))
    except BaseException as e:
        results.put(("error", worker, f"{type(e).__name__}: {e}"))


def run_trainers(
    urls: list[str],
    model: str,
    *,
    trainings: int,
    points: int,
    pause: float = 0.0,
    during: Callable[[], None] | None = None,
    held: Callable[[Callable[[], None]], None] | None = None,
) -> list[tuple[str, int, Any]]:
    """Spawn one trainer per URL, released together; run ``during`` while they train; their reports.

    ``held(release)`` instead of ``during``: the trainers stop before their last points until it calls
    ``release()`` (or returns), so a fault it makes first always meets work still to write.
    """
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    start, hold = ctx.Event(), ctx.Event() if held is not None else None
    procs = [
        ctx.Process(target=train, args=(url, model, i, trainings, points, pause, results, start, hold))
        for i, url in enumerate(urls)
    ]
    for p in procs:
        p.start()
    start.set()
    try:
        if during is not None:
            during()
        if held is not None and hold is not None:
            try:
                held(hold.set)
            finally:
                hold.set()
        reports = [results.get(timeout=WAIT) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    return sorted(reports, key=lambda r: r[1])


def assert_all_arrived(url: str, model: str, *, trainers: int, trainings: int, points: int) -> None:
    """Every training finished once, versions 1..N with no gap or repeat, every point exactly once."""
    n = trainers * trainings
    model_id = scalar(url, "SELECT id FROM models WHERE name = :m", m=model)
    numbers = scalar(url, "SELECT GROUP_CONCAT(number ORDER BY number) FROM versions WHERE model_id = :m", m=model_id)
    assert [int(x) for x in str(numbers).split(",")] == list(range(1, n + 1)), f"versions {numbers} on {url}"
    finished = scalar(url, "SELECT COUNT(*) FROM trainings WHERE model_id = :m AND status = 'finished'", m=model_id)
    trainings_ = scalar(url, "SELECT COUNT(*) FROM trainings WHERE model_id = :m", m=model_id)
    versioned = scalar(url, "SELECT COUNT(DISTINCT training_id) FROM versions WHERE model_id = :m", m=model_id)
    assert (finished, trainings_, versioned) == (n, n, n), f"trainings finished/all/with a version on {url}"
    total = point_count(url)
    distinct = scalar(url, "SELECT COUNT(*) FROM (SELECT DISTINCT training_id, key_id, step FROM metric_points) d")
    assert (total, distinct) == (n * points, n * points), f"{total} points stored, {distinct} distinct, on {url}"
