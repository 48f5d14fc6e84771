"""Version numbers stay unique and gapless when processes train one model at once."""

from __future__ import annotations

import multiprocessing as mp

import pytest
from sqlalchemy import create_engine, text

import modeltrail


def _train_many(url: str, worker: int, count: int, queue: mp.Queue) -> None:
    try:
        tracker = modeltrail.Tracker(url)
        for i in range(count):
            with tracker.training("shared", params={"worker": worker, "i": i}) as run:
                run.log_metric("loss", 1.0 / (i + 1))
        queue.put("ok")
    except Exception as e:
        queue.put(repr(e))


@pytest.mark.slow
def test_concurrent_processes_get_unique_gapless_versions(db_url: str) -> None:
    modeltrail.Tracker(db_url).close()  # create the schema once; the race under test is versioning
    workers, per_worker = 6, 8
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_train_many, args=(db_url, w, per_worker, queue)) for w in range(workers)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert results == ["ok"] * workers
    tracker = modeltrail.Tracker(db_url)
    versions = tracker.versions("shared")
    assert [v.number for v in versions] == list(range(1, workers * per_worker + 1))
    assert len({v.training_id for v in versions}) == workers * per_worker
    # Each version's parent is the one before it, whichever process wrote it.
    assert [v.parent_number for v in versions] == [None, *range(1, workers * per_worker)]
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM trainings WHERE status = 'finished'")).scalar() == 48
    engine.dispose()
