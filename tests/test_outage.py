"""Nothing lost when the database goes away: spool, replay, exactly once, SIGKILL bound."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import filelock
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.proxy import Proxy

import modeltrail
from modeltrail import _spool as spool_mod


@pytest.fixture
def proxied(mysql_url: str) -> Iterator[tuple[str, Proxy]]:
    url = make_url(mysql_url)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 3306)
    yield url.set(port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.cut()


def count(url: str, sql: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    finally:
        engine.dispose()


def assert_exactly_once(tracker: modeltrail.Tracker, n_points: int) -> None:
    (record,) = tracker.trainings("outage")
    assert record.status == "finished" and record.version == 1
    assert record.params == {"lr": 0.1, "epochs": 3, "late": "yes"}
    history = tracker.metric_history(record, "loss")
    assert [p.step for p in history] == list(range(n_points))
    assert record.metrics["loss"].count == n_points
    assert [v.number for v in tracker.versions("outage")] == [1]


def test_connection_cut_mid_training_is_spooled_and_replayed_exactly_once(
    proxied: tuple[str, Proxy], mysql_url: str
) -> None:
    url, proxy = proxied
    tracker = modeltrail.Tracker(url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracker.training("outage", params={"lr": 0.1, "epochs": 3}) as run:
            for step in range(500):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.flush()
            proxy.cut()  # the server "restarts" mid-training
            for step in range(500, 1000):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.log_params({"late": "yes"})
        # The version is made when the database is back.
        assert run.status == "finished" and isinstance(run.version, modeltrail.PendingVersion)
    spool_warnings = [w for w in caught if "spool" in str(w.message)]
    assert len(spool_warnings) == 1 and str(spool_mod.spool_root()) in str(spool_warnings[0].message)
    assert spool_mod.pending(url) > 0

    proxy.restore()
    assert tracker.sync(timeout=60) == 0
    assert spool_mod.pending(url) == 0
    assert_exactly_once(modeltrail.Tracker(mysql_url), 1000)


def test_database_down_for_the_whole_training_then_drained_by_the_next_process(
    proxied: tuple[str, Proxy], mysql_url: str, tmp_path: Path
) -> None:
    url, proxy = proxied
    modeltrail.Tracker(mysql_url).close()  # schema exists; the server is then unreachable
    proxy.cut()
    script = textwrap.dedent(
        f"""
        import modeltrail
        tracker = modeltrail.Tracker({url!r})
        with tracker.training("outage", params={{"lr": 0.1, "epochs": 3}}) as run:
            for step in range(300):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.log_params({{"late": "yes"}})
        print("id", run.id, "version", run.version)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert "id None version version of 'outage' pending" in done.stdout and "spool" in done.stderr
    assert spool_mod.pending(url) > 0
    saved = tmp_path / "saved-spool"
    shutil.copytree(spool_mod.spool_dir_for(url), saved)

    proxy.restore()
    tracker = modeltrail.Tracker(url)  # a new process-wide store adopts the orphaned spool
    deadline = time.monotonic() + 60
    while spool_mod.pending(url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tracker.sync(timeout=60) == 0
    assert_exactly_once(modeltrail.Tracker(mysql_url), 300)

    # Replaying the very same spool again changes nothing.
    shutil.copytree(saved, spool_mod.spool_dir_for(url), dirs_exist_ok=True)
    assert spool_mod.pending(url) > 0
    assert tracker.sync(timeout=60) == 0
    assert_exactly_once(modeltrail.Tracker(mysql_url), 300)
    assert count(mysql_url, "SELECT COUNT(*) FROM trainings") == 1


def test_sigkill_loses_at_most_the_unflushed_queue_and_never_claims_finished(db_url: str, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time, modeltrail
        run = modeltrail.Tracker({db_url!r}).training("killed", params={{"a": 1}})
        step = 0
        for step in range(20_000):
            run.log_metric("x", float(step), step=step)
        run.flush()
        print("flushed", step + 1, flush=True)
        while True:
            step += 1
            run.log_metric("x", float(step), step=step)
            time.sleep(0.0001)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("flushed"), line
    flushed = int(line.split()[1])
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    tracker = modeltrail.Tracker(db_url)
    (record,) = tracker.trainings("killed")
    assert record.status == "running" and record.version is None and record.ended_at is None
    points = tracker.metric_history(record, "x")
    steps = [p.step for p in points]
    assert steps[:flushed] == list(range(flushed))  # everything flushed before the kill is there
    assert steps == list(range(len(steps)))  # and what arrived after it is a gapless prefix


def test_a_live_spool_is_locked_and_an_ended_ones_is_adopted(tmp_path: Path) -> None:
    url = "sqlite:///nowhere.db"
    folder = tmp_path / "spools"
    live = spool_mod.Spool.create(url, folder)
    live.append("start", {"uuid": "u-1"})
    assert isinstance(live._lock, filelock.FileLock) and live._lock.is_locked
    with spool_mod.orphans(url, folder) as found:
        assert found == []  # its process (this one) still holds it
    live.close()  # not empty: the file and its entries stay for whoever comes next
    assert spool_mod.pending(url, folder) == 1
    with spool_mod.orphans(url, folder) as found, spool_mod.orphans(url, folder) as again:
        assert [len(s) for s in found] == [1] and again == []  # one adopter at a time
        (orphan,) = found
        (seq, kind, payload), *_ = orphan.entries()
        assert (kind, payload) == ("start", {"uuid": "u-1"})
        orphan.ack(seq)
    assert spool_mod.pending(url, folder) == 0 and list(spool_mod.spool_dir_for(url, folder).iterdir()) == []


def test_spools_default_to_the_user_cache_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.delenv("MODELTRAIL_SPOOL_DIR")
    assert spool_mod.spool_root() == platformdirs.user_cache_path("modeltrail", appauthor=False) / "spool"
    monkeypatch.setenv("MODELTRAIL_SPOOL_DIR", "/elsewhere")
    assert spool_mod.spool_root() == Path("/elsewhere")
