"""8 processes x several threads training one model on MariaDB at once."""

from __future__ import annotations

import multiprocessing as mp
import threading

import pytest
from sqlalchemy import create_engine, text

import modeltrail

PROCESSES, THREADS, TRAININGS, POINTS = 8, 4, 3, 200


def _process(url: str, worker: int, queue: mp.Queue) -> None:
    errors: list[str] = []
    tracker = modeltrail.Tracker(url, spool=False)

    def thread(t: int) -> None:
        try:
            for i in range(TRAININGS):
                tag = f"{worker}-{t}-{i}"
                with tracker.training("shared", params={"tag": tag}) as run:
                    for step in range(POINTS):
                        run.log_metric("loss", float(step), step=step)
                        run.log_metric("acc", float(POINTS - step), step=step)
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=thread, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    queue.put(errors)


@pytest.mark.slow
def test_many_processes_and_threads_lose_nothing(mysql_url: str) -> None:
    modeltrail.Tracker(mysql_url).close()
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_process, args=(mysql_url, w, queue)) for w in range(PROCESSES)]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in queue.get(timeout=600)]
    for p in procs:
        p.join(timeout=60)
    assert errors == []  # no deadlock or duplicate key escaped to a user

    total = PROCESSES * THREADS * TRAININGS
    tracker = modeltrail.Tracker(mysql_url)
    versions = tracker.versions("shared")
    assert [v.number for v in versions] == list(range(1, total + 1))
    records = tracker.trainings("shared")
    assert len(records) == total and {r.status for r in records} == {"finished"}
    assert len({r.params["tag"] for r in records}) == total
    for record in records:
        loss, acc = record.metrics["loss"], record.metrics["acc"]
        assert (loss.count, loss.min, loss.max, loss.last, loss.last_step) == (
            POINTS,
            0.0,
            POINTS - 1.0,
            POINTS - 1.0,
            POINTS - 1,
        )
        assert (acc.count, acc.min, acc.max, acc.last) == (POINTS, 1.0, float(POINTS), 1.0)
    engine = create_engine(mysql_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM metric_points")).scalar() == total * POINTS * 2
    engine.dispose()
