"""The background writer: nothing logged is dropped, summaries stay exact, exit flushes."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import threading
import warnings

import pytest

import modeltrail
from modeltrail._writer import close_writer, writer_for


def test_many_points_from_many_threads_all_arrive_with_exact_summaries(tracker: modeltrail.Tracker) -> None:
    n_threads, n_points = 4, 5_000
    with tracker.training("m") as run:

        def work(t: int) -> None:
            for i in range(n_points):
                run.log_metric(f"thread{t}", float(i % 997), step=i)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    record = tracker.trainings("m")[0]
    for t in range(n_threads):
        summary = record.metrics[f"thread{t}"]
        assert summary.count == n_points
        assert (summary.min, summary.max, summary.last, summary.last_step) == (0.0, 996.0, float(4999 % 997), 4999)
        history = tracker.metric_history(run, f"thread{t}")
        assert [p.step for p in history] == list(range(n_points))


def test_writer_does_no_io_on_the_callers_thread(tracker: modeltrail.Tracker) -> None:
    with tracker.training("m") as run:
        writer = writer_for(tracker.store)
        before = writer.written
        run.log_metric("x", 1.0)
        # The point is queued, not yet written: the caller returned before any I/O.
        assert writer.written == before and len(writer.queue) >= 1
        run.flush()
        assert writer.written == before + 1


def test_summaries_continue_across_batches(tracker: modeltrail.Tracker) -> None:
    with tracker.training("m") as run:
        run.log_metric("loss", 5.0, step=0)
        run.flush()
        run.log_metric("loss", 1.0, step=1)
        run.flush()
        run.log_metric("loss", math.nan, step=2)
        run.log_metric("loss", 3.0, step=3)
    summary = tracker.trainings("m")[0].metrics["loss"]
    assert (summary.count, summary.min, summary.min_step, summary.max, summary.max_step) == (4, 1.0, 1, 5.0, 0)
    assert (summary.last, summary.last_step) == (3.0, 3)


def test_interpreter_exit_flushes_everything(db_url: str, tmp_path) -> None:
    script = textwrap.dedent(
        f"""
        import modeltrail
        run = modeltrail.Tracker({db_url!r}).training("m")
        for i in range(50_000):
            run.log_metric("x", float(i), step=i)
        # no flush, no finish: the process simply ends
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120, cwd=tmp_path)
    tracker = modeltrail.Tracker(db_url)
    (record,) = tracker.trainings("m")
    assert record.metrics["x"].count == 50_000
    assert len(tracker.metric_history(record, "x")) == 50_000
    # Never finished: it is not reported as finished and has no version; exit records it as abandoned.
    assert record.status == "failed" and record.version is None
    assert tracker.get_training(record.id).error == "abandoned: the process exited while the training was still running"


def test_back_pressure_bounds_the_queue(sqlite_url: str) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    writer = writer_for(tracker.store)
    writer.max_pending = 1_000
    with tracker.training("m") as run:
        peak = 0
        for i in range(20_000):
            run.log_metric("x", float(i), step=i)
            peak = max(peak, len(writer.queue))
    assert peak <= 1_000 + 1
    assert tracker.trainings("m")[0].metrics["x"].count == 20_000


def test_closing_a_tracker_flushes_and_joins_its_writer(sqlite_url: str) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    store = tracker.store
    writer = writer_for(store)
    assert writer_for(store) is writer  # one per store in this process
    run = tracker.training("m")
    run.log_metric("x", 1.0)
    tracker.close()
    assert not writer._thread.is_alive() and not writer.queue
    reopened = modeltrail.Tracker(sqlite_url)
    assert reopened.trainings("m")[0].metrics["x"].count == 1
    fresh = writer_for(reopened.store)
    assert fresh is not writer and fresh._thread.is_alive()
    close_writer(reopened.store)
    assert not fresh._thread.is_alive() and writer_for(reopened.store) is not fresh
    reopened.close()


def test_close_all_flushes_and_stops_every_writer(sqlite_url: str) -> None:
    from modeltrail._store import close_all

    tracker = modeltrail.Tracker(sqlite_url)
    writer = writer_for(tracker.store)
    tracker.training("m").log_metric("x", 1.0)
    close_all()
    assert not writer._thread.is_alive() and not writer.queue
    assert modeltrail.Tracker(sqlite_url).trainings("m")[0].metrics["x"].count == 1


def test_a_forked_child_starts_its_own_writer(sqlite_url: str, tmp_path) -> None:
    script = textwrap.dedent(
        f"""
        import os, modeltrail
        from modeltrail._writer import writer_for
        tracker = modeltrail.Tracker({sqlite_url!r})
        parent = writer_for(tracker.store)
        pid = os.fork()
        if pid == 0:
            child = modeltrail.Tracker({sqlite_url!r})
            assert writer_for(child.store) is not parent
            with child.training("from-child") as run:
                run.log_metric("x", 1.0)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        with tracker.training("from-parent") as run:
            run.log_metric("x", 2.0)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120, cwd=tmp_path)
    tracker = modeltrail.Tracker(sqlite_url)
    assert sorted(m.name for m in tracker.models()) == ["from-child", "from-parent"]


def test_a_tracker_used_as_a_context_manager_leaves_no_writer_thread(sqlite_url: str) -> None:
    """Leaving the ``with`` block writes what was logged, then stops and joins the writer thread."""
    import threading

    import modeltrail

    before = {t.ident for t in threading.enumerate() if t.name.startswith("modeltrail-writer")}
    with modeltrail.Tracker(sqlite_url) as tracker, tracker.training("m") as run:
        run.log_metric("loss", 0.5, step=0)
    left = {t.ident for t in threading.enumerate() if t.name.startswith("modeltrail-writer")} - before
    assert left == set()
    with modeltrail.Tracker(sqlite_url) as again:
        assert [p.value for p in again.metric_history(run, "loss")] == [0.5]


def test_closing_one_tracker_leaves_another_trackers_training_logging(sqlite_url: str) -> None:
    """Trackers of one database share a writer: closing one must not stop the other's running training."""
    import modeltrail

    first, second = modeltrail.Tracker(sqlite_url), modeltrail.Tracker(sqlite_url)
    with first.training("m") as run:
        run.log_metric("loss", 1.0, step=0)
        second.close()
        for step in range(1, 6):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
    assert run.status == "finished" and run.version is not None
    first.close()
    with modeltrail.Tracker(sqlite_url) as reader:
        assert [p.step for p in reader.metric_history(run, "loss")] == [0, 1, 2, 3, 4, 5]


def test_offline_warning_says_busy_or_unreachable(
    sqlite_url: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database still deadlocked after every retry is called busy, not unreachable; one warning per writer."""
    from modeltrail._errors import StorageError, StorageUnavailableError

    monkeypatch.setenv("MODELTRAIL_SPOOL_DIR", str(tmp_path))
    for error, said in (
        (StorageError("(1213, 'Deadlock found when trying to get lock')"), "the database is busy (still locked"),
        (StorageUnavailableError("cannot reach the database"), "the database is unreachable"),
    ):
        tracker = modeltrail.Tracker(sqlite_url)
        writer = writer_for(tracker.store)
        with pytest.warns(RuntimeWarning) as caught:
            writer._go_offline(error)
            writer._go_offline(error)
        assert [str(w.message)[: len("modeltrail: ") + len(said)] for w in caught] == [f"modeltrail: {said}"]
        close_writer(tracker.store)
        tracker.close()


def test_a_split_cut_short_by_an_outage_replays_each_point_once(
    sqlite_url: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch the database refused whole is split; an outage after its first half committed spools the
    batch; its replay (accepted whole this time) must not write that half a second time."""
    from modeltrail._errors import StorageUnavailableError
    from modeltrail.cli import main

    monkeypatch.setenv("MODELTRAIL_SPOOL_DIR", str(tmp_path))
    tracker = modeltrail.Tracker(sqlite_url)
    run = tracker.training("split", params={"a": 1})
    writer = writer_for(tracker.store)
    real = writer._applier.points
    halves: list[int] = []

    def flaky(batch_id: str, rows: list) -> None:  # type: ignore[type-arg]
        if len(rows) == 4:
            raise ValueError("refused whole, this once")
        halves.append(len(rows))
        if len(halves) == 2:
            raise StorageUnavailableError("the server went away between the halves")
        real(batch_id, rows)

    monkeypatch.setattr(writer._applier, "points", flaky)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for step in range(4):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.flush()
        run.finish()
        tracker.close()
    assert halves == [2, 2]  # the first half is in the ledger, the batch is in the spool
    assert main(["sync", "--uri", sqlite_url]) == 0
    fresh = modeltrail.Tracker(sqlite_url)
    (training,) = fresh.trainings("split")
    points = fresh.metric_history(training.id, "loss")
    assert [p.step for p in points] == [0, 1, 2, 3]
    assert fresh.get_training(training.id).metrics["loss"].count == 4
