"""modeltrail on a three-node MariaDB Galera cluster behind HAProxy (`.ci/cluster`).

Every test here shares the one cluster (faults included), so they run one at a time: `make test`
runs the tests marked ``cluster`` in a pass of their own, without xdist, after the others. (An
``xdist_group`` does not keep them on one worker with this pytest and pytest-xdist: the two
workers ran them side by side, and one test's cleanup rejoined the node another had cut off.)
Waits are bounded; nothing asserts a duration.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from tests import _cluster as cl

import modeltrail
from modeltrail import _store as store_mod
from modeltrail._errors import StorageError
from modeltrail._migrations import head_revision
from modeltrail._schema import VERSION_TABLE, Base

pytestmark = pytest.mark.cluster


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


def _spooled() -> bool:
    """Whether a trainer (a child process sharing the test's spool folder) has spooled anything."""
    return any(Path(os.environ["MODELTRAIL_SPOOL_DIR"]).rglob("*.spool"))


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
    # The creation's progress table may be left by a racer that stopped between two steps once the ledger
    # was stamped (dropping it then would be DDL beside the trainers' writes); a stamped ledger never reads it.
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
    cl.create_ledger(cluster)

    def kill_then_restart() -> None:
        cl.wait_until(lambda: cl.point_count(cluster.nodes[0]) > 2000, "points")
        cl.control("kill", "2")
        cl.wait_until(lambda: cl.node_state(0)[1] == 2, "the cluster to see two nodes")
        cl.wait_until(lambda: cl.point_count(cluster.nodes[0]) > 6000, "more points")
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
    cl.create_ledger(cluster)

    def cut_then_restore(release: Callable[[], None]) -> None:
        cl.wait_until(lambda: cl.point_count(cluster.nodes[0]) > 1000, "points")
        cl.control("kill-proxy")
        release()
        cl.wait_until(_spooled, "trainers to spool")  # training goes on while nothing reaches the cluster
        cl.control("start-proxy")

    reports = cl.run_trainers([cluster.proxy] * 4, "cut", trainings=3, points=3000, pause=0.1,
                              held=cut_then_restore)  # fmt: skip
    assert reports == [("ok", i, 0) for i in range(4)]
    cl.assert_all_arrived(cluster.proxy, "cut", trainers=4, trainings=3, points=3000)


@pytest.mark.slow
def test_a_node_cut_off_under_its_own_trainers_loses_nothing(cluster: cl.ClusterDB) -> None:
    """Node 2 isolated mid-training under trainers connected straight to it: non-Primary, it answers 1047.

    Those trainers go on (their writes are retried, then spooled) and replay once it has rejoined; a
    trainer on node 1 writes on meanwhile, and the rejoin (IST) brings node 2 those rows too.
    """
    cl.create_ledger(cluster)
    seen: dict[str, object] = {}

    def isolate_then_rejoin(release: Callable[[], None]) -> None:
        cl.wait_until(lambda: cl.point_count(cluster.nodes[0]) > 1000, "points")
        cl.control("isolate", "2")
        seen["component"] = cl.component(1)
        seen["refusal"] = cl.refusal(cluster.nodes[1], "SELECT COUNT(*) FROM metric_points")
        written = cl.point_count(cluster.nodes[0])
        release()
        cl.wait_until(lambda: cl.point_count(cluster.nodes[0]) > written, "the trainer on node 1 to write on")
        # The trainers on node 2 retry (1047, 1180) for a while, then spool what they log and train on.
        cl.wait_until(_spooled, "the trainers on node 2 to spool")
        seen["rejoin"] = cl.control("rejoin", "2")

    urls = [cluster.nodes[1]] * 3 + [cluster.nodes[0]]
    reports = cl.run_trainers(urls, "isolated", trainings=3, points=3000, pause=0.2, held=isolate_then_rejoin)
    assert reports == [("ok", i, 0) for i in range(4)]
    assert (seen["component"], seen["refusal"]) == ("non-Primary", 1047)
    assert "rejoined (IST)" in str(seen["rejoin"])
    assert (cl.node_state(1), cl.component(1)) == (("Synced", 3), "Primary")
    for url in (cluster.nodes[0], cluster.nodes[1]):
        cl.assert_all_arrived(url, "isolated", trainers=4, trainings=3, points=3000)


def test_a_commit_in_flight_when_its_node_is_cut_off_is_an_outage_not_a_refusal(cluster: cl.ClusterDB) -> None:
    """The node is cut off between a transaction's write and its COMMIT: the commit waits, then fails with 1180.

    "Not connected to Primary Component" is an outage (kept, retried, spooled), never a refusal: a refused
    metric batch is split and its halves written under new batch ids, which a replay of the whole would repeat.
    """
    cl.scalar(cluster.nodes[1], "CREATE TABLE inflight (id INT PRIMARY KEY)")
    store = store_mod.Store(cluster.nodes[1], check=False)
    try:

        def write_then_cut(s: Session) -> None:
            s.execute(text("INSERT INTO inflight VALUES (1)"))
            cl.control("isolate", "2", "--no-wait")  # the COMMIT that follows meets the cut

        with pytest.raises(StorageError) as cut:
            store.run(write_then_cut, attempts=1)
        assert "(1180" in str(cut.value) and "Not connected to Primary Component" in str(cut.value)
        assert store.is_busy(cut.value)
        cl.wait_until(lambda: cl.component(1) == "non-Primary", "node 2 to be cut off")
        assert cl.refusal(cluster.nodes[1], "SELECT COUNT(*) FROM inflight") == 1047
        cl.control("rejoin", "2")
        assert cl.scalar(cluster.nodes[0], "SELECT COUNT(*) FROM inflight") == 0  # nothing of it was committed
        store.run(lambda s: s.execute(text("INSERT INTO inflight VALUES (1)")))  # once back, written once
        assert cl.scalar(cluster.nodes[0], "SELECT COUNT(*) FROM inflight") == 1
    finally:
        store.close()


@pytest.mark.slow
def test_the_proxy_sends_nothing_to_an_isolated_node(cluster: cl.ClusterDB) -> None:
    """Node 2 isolated while trainers write through HAProxy: the proxy drops it, training goes on through 1 and 3."""
    cl.create_ledger(cluster)
    seen: dict[str, object] = {}

    def isolate_then_rejoin(release: Callable[[], None]) -> None:
        cl.wait_until(lambda: cl.point_count(cluster.nodes[0]) > 1000, "points")
        cl.control("isolate", "2")
        # The proxy's check marks node 2 down within a few seconds and shuts the sessions it had there.
        cl.wait_until(lambda: cl.proxy_avoids("node2"), "the proxy to stop sending to node 2")
        written = cl.point_count(cluster.nodes[0])
        release()
        cl.wait_until(lambda: cl.point_count(cluster.nodes[0]) > written, "training to go on through nodes 1 and 3")
        seen["targets"] = cl.proxy_targets(6)
        seen["component"] = cl.component(1)
        seen["rejoin"] = cl.control("rejoin", "2")

    reports = cl.run_trainers([cluster.proxy] * 4, "routed", trainings=3, points=3000, pause=0.2,
                              held=isolate_then_rejoin)  # fmt: skip
    assert reports == [("ok", i, 0) for i in range(4)]
    assert seen["targets"] and seen["targets"] <= {"node1", "node3"}  # type: ignore[operator]
    assert seen["component"] == "non-Primary"
    assert "rejoined (IST)" in str(seen["rejoin"])
    assert cl.node_state(1) == ("Synced", 3)
    for url in (cluster.proxy, cluster.nodes[1]):
        cl.assert_all_arrived(url, "routed", trainers=4, trainings=3, points=3000)


def test_server_sees_no_galera(mysql_url: str) -> None:
    """On one plain MariaDB server nothing changes: GET_LOCK guards creation, reads are not held."""
    with modeltrail.Tracker(mysql_url) as tracker:
        assert not tracker.store.galera
        assert tracker.store.run(lambda s: s.execute(text("SELECT @@wsrep_sync_wait")).scalar()) == 0


def test_wsrep_not_ready_is_retried_only_on_a_galera_node(sqlite_url: str) -> None:
    """1047 is Galera's "WSREP has not yet prepared node" (retry elsewhere), but MySQL's "unknown command";
    likewise a COMMIT cut off from the Primary Component (1180) is retried on a Galera node only."""
    import pymysql
    from sqlalchemy import exc as sa_exc

    store = store_mod.Store(sqlite_url)
    error = sa_exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(1047, "WSREP has not yet prepared"))
    assert not store.is_retryable(error)
    store.galera = True
    assert store.is_retryable(error)
    deadlock = sa_exc.OperationalError("COMMIT", {}, pymysql.err.OperationalError(1213, "Deadlock found"))
    assert store.is_retryable(deadlock)
    text_ = "Error while appending streaming replication fragment(provider status: Not connected to Primary Component)"
    cut = pymysql.err.OperationalError(1180, text_)
    assert store.is_retryable(sa_exc.OperationalError("COMMIT", {}, cut))
    store.galera = False
    assert not store.is_retryable(sa_exc.OperationalError("COMMIT", {}, cut))
    store.close()
