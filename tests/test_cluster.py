"""modeltrail on a three-node MariaDB Galera cluster behind HAProxy (`.ci/cluster`).

Every test here shares the one cluster (faults included), so they run one at a time in one
xdist group. Waits are bounded; nothing asserts a duration.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from tests import _cluster as cl

import modeltrail
from modeltrail import _store as store_mod
from modeltrail._migrations import head_revision
from modeltrail._schema import VERSION_TABLE, Base

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("galera")]


@pytest.fixture
def cluster() -> Iterator[cl.ClusterDB]:
    yield from cl.cluster_database()


def _open(url: str, results: mp.Queue, start: object) -> None:
    try:
        start.wait(cl.WAIT)  # type: ignore[attr-defined]
        with modeltrail.Tracker(url) as tracker, tracker.training("opened", params={"url": url}) as run:
            run.log_metric("loss", 1.0)
        results.put("ok")
    except BaseException as e:
        results.put(f"{type(e).__name__}: {e}")


def test_galera_is_detected_and_every_table_has_a_primary_key(cluster: cl.ClusterDB) -> None:
    with modeltrail.Tracker(cluster.proxy) as tracker:
        with tracker.training("m", params={"lr": 0.1}) as run:
            run.log_metric("loss", 0.5, step=1)
        assert tracker.store.galera
        # Reads wait for the node to catch up with the cluster; the bulk point writer does not.
        assert tracker.store.run(lambda s: s.execute(text("SELECT @@wsrep_sync_wait")).scalar()) == 1
        assert tracker.store.run(lambda s: s.execute(text("SELECT @@wsrep_sync_wait")).scalar(), causal=False) == 0
    without_pk = cl.scalar(
        cluster.nodes[0],
        "SELECT GROUP_CONCAT(t.table_name) FROM information_schema.tables t WHERE t.table_schema = :db "
        "AND NOT EXISTS (SELECT 1 FROM information_schema.table_constraints c WHERE c.table_schema = t.table_schema "
        "AND c.table_name = t.table_name AND c.constraint_type = 'PRIMARY KEY')",
        db=cluster.name,
    )
    assert without_pk is None
    tables = cl.scalar(
        cluster.nodes[2], "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = :db", db=cluster.name
    )
    assert tables == len(Base.metadata.tables) + 1  # ours and the revision stamp, replicated to node 3
    assert cl.scalar(cluster.nodes[1], f"SELECT version_num FROM {VERSION_TABLE}") == head_revision()
    # A plain server is not taken for a cluster node.
    assert not store_mod.Store("sqlite://").galera


@pytest.mark.slow
def test_processes_creating_one_new_ledger_through_every_node_at_once(cluster: cl.ClusterDB) -> None:
    """No GET_LOCK on Galera: creation races through three nodes and every opener succeeds."""
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    start = ctx.Event()
    urls = [*cluster.nodes, *cluster.nodes]
    procs = [ctx.Process(target=_open, args=(url, results, start)) for url in urls]
    for p in procs:
        p.start()
    start.set()
    reports = [results.get(timeout=cl.WAIT) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert reports == ["ok"] * len(urls)
    for node in cluster.nodes:
        assert cl.scalar(node, f"SELECT GROUP_CONCAT(version_num) FROM {VERSION_TABLE}") == head_revision()
    # The creation's progress table is gone once the ledger is stamped.
    assert cl.scalar(cluster.nodes[0], "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = :db "
                     "AND table_name = :t", db=cluster.name, t=f"{VERSION_TABLE}_creating") == 0  # fmt: skip
    assert cl.scalar(cluster.proxy, "SELECT GROUP_CONCAT(number ORDER BY number) FROM versions") == ",".join(
        str(n) for n in range(1, len(urls) + 1)
    )


def test_a_version_written_through_one_node_is_read_at_once_through_another(cluster: cl.ClusterDB) -> None:
    writer, reader = modeltrail.Tracker(cluster.nodes[0]), modeltrail.Tracker(cluster.nodes[1])
    try:
        for i in range(1, 6):
            with writer.training("causal", params={"i": i}) as run:
                run.log_metric("acc", i / 10)
            writer.flush()
            versions = reader.versions("causal")
            assert [v.number for v in versions] == list(range(1, i + 1))
            assert reader.metric_history(versions[-1].training_id, "acc")[-1].value == i / 10
    finally:
        writer.close()
        reader.close()


@pytest.mark.slow
def test_sixteen_trainers_through_three_nodes_get_gapless_versions(cluster: cl.ClusterDB) -> None:
    """Trainers writing one model through different nodes: certification failures are retried, never seen."""
    urls = [cluster.nodes[i % 3] for i in range(16)]
    reports = cl.run_trainers(urls, "shared", trainings=3, points=200)
    assert reports == [("ok", i, 0) for i in range(16)]
    cl.assert_all_arrived(cluster.proxy, "shared", trainers=16, trainings=3, points=200)
    tracker = modeltrail.Tracker(cluster.proxy)
    versions = tracker.versions("shared")
    assert [v.parent_number for v in versions] == [None, *range(1, 48)]
    tracker.close()


@pytest.mark.slow
def test_a_node_killed_while_eight_trainers_write_loses_nothing(cluster: cl.ClusterDB) -> None:
    """SIGKILL one node mid-training: trainers go on (reconnect or spool), every row arrives once; it rejoins."""
    modeltrail.Tracker(cluster.proxy).close()

    def kill_then_restart() -> None:
        cl.wait_until(lambda: cl.scalar(cluster.nodes[0], "SELECT COUNT(*) FROM metric_points") > 2000, "points")
        cl.control("kill", "2")
        cl.wait_until(lambda: cl.node_state(0)[1] == 2, "the cluster to see two nodes")
        cl.wait_until(lambda: cl.scalar(cluster.nodes[0], "SELECT COUNT(*) FROM metric_points") > 6000, "more points")
        cl.control("start-node", "2")  # returns once the node has rejoined and is Synced

    reports = cl.run_trainers([cluster.proxy] * 8, "survivor", trainings=3, points=2000, pause=0.1,
                              during=kill_then_restart)  # fmt: skip
    assert reports == [("ok", i, 0) for i in range(8)]
    assert cl.node_state(1) == ("Synced", 3)
    for url in (cluster.proxy, cluster.nodes[1]):  # the rejoined node has every row too
        cl.assert_all_arrived(url, "survivor", trainers=8, trainings=3, points=2000)


@pytest.mark.slow
def test_the_proxy_cut_and_restored_loses_nothing(cluster: cl.ClusterDB) -> None:
    """HAProxy killed outright mid-training: trainers spool meanwhile and replay once it is back."""
    modeltrail.Tracker(cluster.proxy).close()

    def cut_then_restore() -> None:
        cl.wait_until(lambda: cl.scalar(cluster.nodes[0], "SELECT COUNT(*) FROM metric_points") > 1000, "points")
        cl.control("kill-proxy")
        cl.wait_until(_spooled, "trainers to spool")  # training goes on while nothing reaches the cluster
        cl.control("start-proxy")

    def _spooled() -> bool:
        return any(Path(os.environ["MODELTRAIL_SPOOL_DIR"]).rglob("*.spool"))

    reports = cl.run_trainers([cluster.proxy] * 4, "cut", trainings=3, points=3000, pause=0.1,
                              during=cut_then_restore)  # fmt: skip
    assert reports == [("ok", i, 0) for i in range(4)]
    cl.assert_all_arrived(cluster.proxy, "cut", trainers=4, trainings=3, points=3000)


def test_server_sees_no_galera(mysql_url: str) -> None:
    """On one plain MariaDB server nothing changes: GET_LOCK guards creation, reads are not held."""
    with modeltrail.Tracker(mysql_url) as tracker:
        assert not tracker.store.galera
        assert tracker.store.run(lambda s: s.execute(text("SELECT @@wsrep_sync_wait")).scalar()) == 0


def test_wsrep_not_ready_is_retried_only_on_a_galera_node(sqlite_url: str) -> None:
    """1047 is Galera's "WSREP has not yet prepared node" (retry elsewhere), but MySQL's "unknown command"."""
    import pymysql
    from sqlalchemy import exc as sa_exc

    store = store_mod.Store(sqlite_url)
    error = sa_exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(1047, "WSREP has not yet prepared"))
    assert not store.is_retryable(error)
    store.galera = True
    assert store.is_retryable(error)
    deadlock = sa_exc.OperationalError("COMMIT", {}, pymysql.err.OperationalError(1213, "Deadlock found"))
    assert store.is_retryable(deadlock)
    store.close()
