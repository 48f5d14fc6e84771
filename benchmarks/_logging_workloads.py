#!/usr/bin/env python3
"""The child side of ``bench_logging.py``: one measurement, in this fresh process.

``bench_logging.py`` runs this file once per figure (``python _logging_workloads.py TASK KWARGS_JSON``), so
memory figures start clean and no writer thread or MLflow queue is left over from another measurement; the
figures come back as one tagged JSON line on stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from _common import MLFLOW_BATCH, MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER, emit_result

#: Metric keys, logged round-robin (a training logs a handful of keys per step).
KEYS = ("loss", "accuracy", "lr", "grad_norm")
BATCH = 20_000  # rows per transaction for the raw-driver reference, as modeltrail's writer


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakSampler:
    """Samples RSS (and optionally a queue length) on a thread while a block runs."""

    def __init__(self, queue_len: Callable[[], int] | None = None, every: float = 0.005) -> None:
        self.queue_len = queue_len
        self.every = every
        self.base = 0
        self.peak = 0
        self.peak_queue = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            if self.queue_len is not None:
                self.peak_queue = max(self.peak_queue, self.queue_len())
            self._stop.wait(self.every)

    def __enter__(self) -> PeakSampler:
        self.base = self.peak = _rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def delta_mib(self) -> float:
        return (self.peak - self.base) / 2**20


def _percentiles(ns: list[int]) -> dict[str, float]:
    ns.sort()
    n = len(ns)
    return {
        "median_us": ns[n // 2] / 1000,
        "p99_us": ns[min(n - 1, int(n * 0.99))] / 1000,
        "max_us": ns[-1] / 1000,
    }


def _timer_overhead_ns(n: int = 100_000) -> float:
    pc = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t0 = pc()
        samples.append(pc() - t0)
    samples.sort()
    return float(samples[n // 2])


def _count_rows(url: str, table: str, where: str = "") -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT COUNT(*) FROM {table} {where}")).scalar_one())
    finally:
        engine.dispose()


def child_mt_calls(url: str, n: int) -> dict[str, Any]:
    """Caller-side cost of ``Training.log_metric``: per-call timers, then a tight loop."""
    import modeltrail

    tracker = modeltrail.Tracker(url)
    pc = time.perf_counter_ns
    keys = KEYS
    with tracker.training("bench-calls", params={"n": n}) as run:
        log = run.log_metric
        for i in range(1000):  # warm-up: first key ids, writer start
            log(keys[i & 3], i * 1e-3, step=i >> 2)
        run.flush()
        samples = [0] * n
        base = 1000 >> 2
        for i in range(n):
            v = i * 1e-6
            k = keys[i & 3]
            s = base + (i >> 2)
            t0 = pc()
            log(k, v, step=s)
            samples[i] = pc() - t0
        run.flush()
        base += n >> 2
        t0 = pc()
        for i in range(n):
            log(keys[i & 3], i * 1e-6, step=base + (i >> 2))
        tight = (pc() - t0) / n
        run.flush()
        training_id = run.id
    tracker.close()
    stored = _count_rows(url, "metric_points", f"WHERE training_id = {training_id}")
    mean = sum(samples) / n / 1000
    out = _percentiles(samples)
    out["mean_us"] = mean
    out.update(tight_mean_us=tight / 1000, timer_ns=_timer_overhead_ns(), calls=n, stored=stored, expected=2 * n + 1000)
    return out


def child_mt_ingest(url: str, n: int, use_tracemalloc: bool = False) -> dict[str, Any]:
    """Sustained ingest: first ``log_metric`` to ``flush()`` returning, with peak memory."""
    import modeltrail
    from modeltrail._writer import writer_for  # the writer's queue length is what this measures

    tracker = modeltrail.Tracker(url)
    keys = KEYS
    writer = writer_for(tracker.store)
    with tracker.training("bench-ingest", params={"n": n}) as run:
        for k in keys:  # key ids resolved outside the timed part, as in any real training after step 0
            run.log_metric(k, 0.0, step=0)
        run.flush()
        log = run.log_metric
        if use_tracemalloc:
            import tracemalloc

            tracemalloc.start()
        with PeakSampler(lambda: len(writer.queue)) as mem:
            c0 = time.process_time()
            t0 = time.perf_counter()
            for i in range(n):
                log(keys[i & 3], i * 1e-6, step=1 + (i >> 2))
            t_logged = time.perf_counter()
            run.flush()
            t1 = time.perf_counter()
            c1 = time.process_time()
        traced_peak = None
        if use_tracemalloc:
            import tracemalloc

            traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        training_id = run.id
    tracker.close()
    stored = _count_rows(url, "metric_points", f"WHERE training_id = {training_id}")
    return {
        "points": n,
        "seconds": t1 - t0,
        "rate": n / (t1 - t0),
        "caller_seconds": t_logged - t0,
        "cpu_us_per_point": (c1 - c0) / n * 1e6,
        "flush_wait_seconds": t1 - t_logged,
        "rss_delta_mib": mem.delta_mib,
        "peak_queue": mem.peak_queue,
        "tracemalloc_peak_mib": traced_peak,
        "stored": stored,
        "expected": n + len(keys),
    }


def child_raw_ingest(url: str, n: int, backend: str) -> dict[str, Any]:
    """The same rows into the same table through the bare driver: a ceiling, not a rival."""
    from sqlalchemy import text

    import modeltrail

    tracker = modeltrail.Tracker(url)  # the schema, a training and its key ids, made by modeltrail
    with tracker.training("bench-raw") as run:
        for k in KEYS:
            run.log_metric(k, 0.0, step=0)
        run.flush()
        training_id = run.id
    with tracker.store.engine.connect() as conn:
        key_ids = dict(conn.execute(text("SELECT name, id FROM metric_keys")).all())
    tracker.close()
    ts = time.time()
    ids = [key_ids[k] for k in KEYS]
    # The same rows as modeltrail's writer stores: seq is each point's ordinal in its metric (0 was logged above).
    rows = [(training_id, ids[i & 3], 1 + (i >> 2), 1 + (i >> 2), i * 1e-6, 0, ts) for i in range(n)]
    columns = "training_id, key_id, step, seq, value, kind, ts"
    if backend == "sqlite":
        import sqlite3

        db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        sql = f"INSERT INTO metric_points ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        c0 = time.process_time()
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            db.execute("BEGIN IMMEDIATE")
            db.executemany(sql, rows[start : start + BATCH])
            db.execute("COMMIT")
        t1 = time.perf_counter()
        c1 = time.process_time()
        db.close()
    else:
        import pymysql

        db = pymysql.connect(
            host=MYSQL_HOST,
            port=MYSQL_PORT,
            user=MYSQL_USER,
            password=MYSQL_PASSWORD,
            database=url.rsplit("/", 1)[1].split("?")[0],
            charset="utf8mb4",
        )
        sql = f"INSERT INTO metric_points ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        c0 = time.process_time()
        t0 = time.perf_counter()
        with db.cursor() as cur:
            for start in range(0, n, BATCH):
                cur.executemany(sql, rows[start : start + BATCH])  # one multi-row INSERT per batch
                db.commit()
        t1 = time.perf_counter()
        c1 = time.process_time()
        db.close()
    return {"points": n, "seconds": t1 - t0, "rate": n / (t1 - t0), "cpu_us_per_point": (c1 - c0) / n * 1e6}


@contextlib.contextmanager
def _mlflow_run(url: str, artifacts: str) -> Iterator[str]:
    import mlflow

    mlflow.set_tracking_uri(url)
    client = mlflow.MlflowClient()
    name = "bench"
    experiment = client.get_experiment_by_name(name)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(name, artifact_location=f"file://{artifacts}")
    )
    with mlflow.start_run(experiment_id=experiment_id) as run:
        yield run.info.run_id


def child_mlflow_calls(url: str, n_sync: int, n_async: int, artifacts: str) -> dict[str, Any]:
    """MLflow's ``mlflow.log_metric``, synchronous and with ``synchronous=False``."""
    import mlflow

    pc = time.perf_counter_ns
    keys = KEYS
    with _mlflow_run(url, artifacts):
        for i in range(20):  # warm-up
            mlflow.log_metric(keys[i & 3], 0.0, step=i >> 2)
        sync = [0] * n_sync
        for i in range(n_sync):
            k, v, s = keys[i & 3], i * 1e-6, 5 + (i >> 2)
            t0 = pc()
            mlflow.log_metric(k, v, step=s)
            sync[i] = pc() - t0
        base = 5 + (n_sync >> 2) + 1
        for i in range(20):  # warm-up of the async queue and its threads
            mlflow.log_metric(keys[i & 3], 0.0, step=base + (i >> 2), synchronous=False)
        mlflow.flush_async_logging()
        base += 5
        samples = [0] * n_async
        t_start = pc()
        for i in range(n_async):
            k, v, s = keys[i & 3], i * 1e-6, base + (i >> 2)
            t0 = pc()
            mlflow.log_metric(k, v, step=s, synchronous=False)
            samples[i] = pc() - t0
        mlflow.flush_async_logging()
        async_seconds = (pc() - t_start) / 1e9
    return {
        "sync": _percentiles(sync),
        "async": _percentiles(samples),
        "n_sync": n_sync,
        "n_async": n_async,
        "async_rate": n_async / async_seconds,
    }


def child_mlflow_batch(url: str, n: int, artifacts: str) -> dict[str, Any]:
    """MLflow's ``MlflowClient.log_batch`` with 1,000 metrics a call, synchronous."""
    import mlflow
    from mlflow.entities import Metric

    with _mlflow_run(url, artifacts) as run_id:
        client = mlflow.MlflowClient()
        ts = int(time.time() * 1000)
        metrics = [Metric(KEYS[i & 3], i * 1e-6, ts, 1 + (i >> 2)) for i in range(n)]
        with PeakSampler() as mem:
            t0 = time.perf_counter()
            for start in range(0, n, MLFLOW_BATCH):
                client.log_batch(run_id, metrics=metrics[start : start + MLFLOW_BATCH])
            t1 = time.perf_counter()
    return {"points": n, "seconds": t1 - t0, "rate": n / (t1 - t0), "rss_delta_mib": mem.delta_mib}


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {
    "mt_calls": child_mt_calls,
    "mt_ingest": child_mt_ingest,
    "raw_ingest": child_raw_ingest,
    "mlflow_calls": child_mlflow_calls,
    "mlflow_batch": child_mlflow_batch,
}


def child_main(task: str, kwargs_json: str) -> None:
    emit_result(CHILDREN[task](**json.loads(kwargs_json)))


if __name__ == "__main__":
    child_main(sys.argv[1], sys.argv[2])
