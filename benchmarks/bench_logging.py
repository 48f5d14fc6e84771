#!/usr/bin/env python3
"""Logging speed: modeltrail against MLflow's SQL tracking store, on SQLite and MariaDB.

Measured, side by side, per backend:

* caller-side cost of one ``log_metric`` (µs/call: median, p99, and the mean of a
  tight loop without per-call timers);
* sustained ingest (points/s from the first ``log_metric`` until ``flush()`` returns),
  with MLflow's ``log_batch`` of 1,000 metrics and the raw driver's ``executemany``
  into the same table as a ceiling;
* the writer's peak RSS growth during the ingest;
* ``import modeltrail`` in a fresh interpreter, and which ML frameworks it pulled in.

Every measurement runs in its own child process (clean memory figures, no threads
left over from a previous one). Run it with the benchmark venv (``make bench``)::

    .venv-bench/bin/python benchmarks/bench_logging.py            # the full run
    .venv-bench/bin/python benchmarks/bench_logging.py --quick    # about a minute
    .venv-bench/bin/python benchmarks/bench_logging.py --backends sqlite --points 200000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

MYSQL_HOST = os.environ.get("BENCH_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("BENCH_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("BENCH_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("BENCH_MYSQL_PASSWORD", "")

#: Modules ``import modeltrail`` must not pull in.
FORBIDDEN = ("torch", "sklearn", "keras", "lightning", "pytorch_lightning", "tensorflow", "jax", "numpy")
#: Metric keys, logged round-robin (a training logs a handful of keys per step).
KEYS = ("loss", "accuracy", "lr", "grad_norm")
BATCH = 20_000  # rows per transaction for the raw-driver reference, as modeltrail's writer
MLFLOW_BATCH = 1_000  # MLflow's own limit on metrics per log_batch

TARGETS = {
    "import": 150.0,  # ms, at most
    "call": 5.0,  # µs/call median, at most
    "ingest_sqlite": 200_000.0,  # points/s, at least
    "ingest_mysql": 80_000.0,
}

CHILD_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "PYTHONHASHSEED": "0",
    "PYTHONWARNINGS": "ignore",
}
RESULT_TAG = "BENCH-RESULT "


# ============================================================== child side
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
    from modeltrail._writer import writer_for

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
    rows = [(training_id, ids[i & 3], 1 + (i >> 2), i * 1e-6, 0, ts) for i in range(n)]
    if backend == "sqlite":
        import sqlite3

        db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        sql = "INSERT INTO metric_points (training_id, key_id, step, value, kind, ts) VALUES (?, ?, ?, ?, ?, ?)"
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
        sql = "INSERT INTO metric_points (training_id, key_id, step, value, kind, ts) VALUES (%s, %s, %s, %s, %s, %s)"
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
    result = CHILDREN[task](**json.loads(kwargs_json))
    sys.stdout.write(RESULT_TAG + json.dumps(result) + "\n")


# ============================================================= parent side
def run_child(task: str, **kwargs: Any) -> dict[str, Any]:
    env = {**os.environ, **CHILD_ENV}
    cmd = [sys.executable, os.path.abspath(__file__), "--child", task, json.dumps(kwargs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
    raise RuntimeError(f"benchmark step {task} failed (exit {proc.returncode})")


_IMPORT_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import {module}
t1 = time.perf_counter()
{extra}
t2 = time.perf_counter()
print(json.dumps({{"import_ms": (t1 - t0) * 1000, "extra_ms": (t2 - t0) * 1000,
    "forbidden": [m for m in {forbidden!r} if m in sys.modules]}}))
"""


def measure_import(module: str, extra: str, runs: int) -> dict[str, Any]:
    code = _IMPORT_PROBE.format(module=module, extra=extra or "pass", forbidden=FORBIDDEN)
    env = {**os.environ, **CHILD_ENV}
    results = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "import_ms": statistics.median(r["import_ms"] for r in results),
        "extra_ms": statistics.median(r["extra_ms"] for r in results),
        "forbidden": sorted({m for r in results for m in r["forbidden"]}),
    }


def importtime_top(code: str, top: int = 6) -> list[tuple[str, float]]:
    """The slowest self+children imports under ``python -X importtime``."""
    env = {**os.environ, **CHILD_ENV}
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env)
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, raw = line[len("import time:") :].split("|")
        name = raw.strip()
        if "." in name or name.startswith(("modeltrail", "_")) or name in ("site", "encodings"):
            continue  # submodules (counted in their package), modeltrail itself, interpreter start-up
        rows.append((name, int(cumulative) / 1000))
    return sorted(rows, key=lambda r: -r[1])[:top]


# --------------------------------------------------------------- databases
def mysql_admin(sql: str) -> None:
    import pymysql

    db = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD)
    try:
        with db.cursor() as cur:
            cur.execute(sql)
    finally:
        db.close()


def mysql_url(database: str) -> str:
    auth = MYSQL_USER + (f":{MYSQL_PASSWORD}" if MYSQL_PASSWORD else "")
    return f"mysql+pymysql://{auth}@{MYSQL_HOST}:{MYSQL_PORT}/{database}?charset=utf8mb4"


@dataclass
class Databases:
    """Fresh databases for one backend: made on demand, dropped at the end."""

    backend: str
    workdir: str
    tag: str
    made: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{os.path.join(self.workdir, name + '.db')}"
        database = f"{name}_{self.tag}"
        mysql_admin(f"DROP DATABASE IF EXISTS `{database}`")
        mysql_admin(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        self.made.append(database)
        return mysql_url(database)

    def drop(self) -> None:
        for database in self.made:
            with contextlib.suppress(Exception):
                mysql_admin(f"DROP DATABASE IF EXISTS `{database}`")
        self.made.clear()


# ------------------------------------------------------------------ report
@dataclass
class Row:
    measure: str
    backend: str
    modeltrail: str
    mlflow: str = "-"
    reference: str = "-"
    target: str = "-"
    ok: bool | None = None


def _us(v: float) -> str:
    return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"


def _rate(v: float) -> str:
    return f"{v:,.0f}"


def print_table(rows: list[Row]) -> None:
    head = ("measure", "backend", "modeltrail", "MLflow", "reference", "target", "")
    marks = {True: "PASS", False: "FAIL", None: ""}
    cells = [head] + [(r.measure, r.backend, r.modeltrail, r.mlflow, r.reference, r.target, marks[r.ok]) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    align = ["<", "<", ">", ">", ">", "<", "<"]

    def fmt(c: tuple[str, ...]) -> str:
        return "  ".join(f"{v:{a}{w}}" for v, a, w in zip(c, align, widths, strict=True)).rstrip()

    print(fmt(head))
    print("  ".join("-" * w for w in widths))
    for c in cells[1:]:
        print(fmt(c))


# -------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts: a smoke run of a minute or so")
    p.add_argument("--backends", default="sqlite,mysql", help="comma-separated: sqlite, mysql (default both)")
    p.add_argument("--points", type=int, help="points of the sustained ingest (default 1,000,000; quick 100,000)")
    p.add_argument("--calls", type=int, help="timed modeltrail log_metric calls (default 100,000; quick 20,000)")
    p.add_argument("--mlflow-sync", type=int, help="timed synchronous MLflow calls (default 300; quick 50)")
    p.add_argument("--mlflow-async", type=int, help="timed asynchronous MLflow calls (default 2,000; quick 300)")
    p.add_argument("--mlflow-points", type=int, help="points MLflow log_batch ingests (default 50,000; quick 5,000)")
    p.add_argument("--import-runs", type=int, help="fresh interpreters per import figure (default 7; quick 3)")
    p.add_argument("--no-mlflow", action="store_true", help="modeltrail and the raw driver only")
    p.add_argument("--tracemalloc", action="store_true", help="also an ingest run under tracemalloc (slower)")
    p.add_argument("--json", metavar="PATH", help="also write every figure as JSON to PATH")
    p.add_argument("--keep", action="store_true", help="keep the databases and SQLite files")
    args = p.parse_args(argv)
    quick = args.quick
    for name, full, small in (
        ("points", 1_000_000, 100_000),
        ("calls", 100_000, 20_000),
        ("mlflow_sync", 300, 50),
        ("mlflow_async", 2_000, 300),
        ("mlflow_points", 50_000, 5_000),
        ("import_runs", 7, 3),
    ):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - {"sqlite", "mysql"}
    if unknown:
        p.error(f"unknown backends: {', '.join(sorted(unknown))}")
    return args


def step(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "--child":
        child_main(argv[1], argv[2])
        return 0
    args = parse_args(argv)
    results: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k != "json"}}
    rows: list[Row] = []
    failed = False

    # ---------------------------------------------------------------- import
    step("import times")
    mt = measure_import("modeltrail", "", args.import_runs)
    mt_tracker = measure_import("modeltrail", "modeltrail.Tracker", args.import_runs)
    sqla = measure_import("sqlalchemy", "import sqlalchemy.orm", args.import_runs)
    results["import"] = {"modeltrail": mt, "modeltrail_tracker": mt_tracker, "sqlalchemy_orm": sqla}
    ml: dict[str, Any] | None = None
    if not args.no_mlflow:
        ml = measure_import("mlflow", "", max(3, args.import_runs // 2))
        results["import"]["mlflow"] = ml
    results["import"]["top_tracker"] = importtime_top("import modeltrail; modeltrail.Tracker")
    mlflow_ms = f"{ml['import_ms']:,.0f}" if ml else "-"
    ok = mt["import_ms"] < TARGETS["import"] and not mt["forbidden"]
    shown = f"{mt['import_ms']:,.1f}"
    rows.append(Row("import modeltrail (ms)", "-", shown, mlflow_ms, target="< 150, no ML fw", ok=ok))
    rows.append(
        Row(
            "  + touching modeltrail.Tracker (ms)",
            "-",
            f"{mt_tracker['extra_ms']:,.1f}",
            reference=f"{sqla['extra_ms']:,.0f} sqlalchemy.orm",
            target="no ML fw",
            ok=not mt_tracker["forbidden"],
        )
    )
    forbidden = sorted(set(mt["forbidden"]) | set(mt_tracker["forbidden"]))

    tag = f"{os.getpid()}"
    workdir = tempfile.mkdtemp(prefix="modeltrail-bench-")
    all_dbs: list[Databases] = []
    try:
        for backend in args.backends:
            dbs = Databases(backend, workdir, tag)
            all_dbs.append(dbs)
            res: dict[str, Any] = {}
            results[backend] = res
            artifacts = os.path.join(workdir, "mlflow-artifacts")

            step(f"{backend}: modeltrail log_metric x {args.calls:,}")
            res["mt_calls"] = run_child("mt_calls", url=dbs.url("mt_bench_calls"), n=args.calls)
            step(f"{backend}: modeltrail ingest of {args.points:,} points")
            res["mt_ingest"] = run_child("mt_ingest", url=dbs.url("mt_bench_ingest"), n=args.points)
            if args.tracemalloc:
                step(f"{backend}: modeltrail ingest under tracemalloc")
                res["mt_ingest_traced"] = run_child(
                    "mt_ingest", url=dbs.url("mt_bench_traced"), n=args.points, use_tracemalloc=True
                )
            step(f"{backend}: raw driver executemany of {args.points:,} points")
            res["raw"] = run_child("raw_ingest", url=dbs.url("mt_bench_raw"), n=args.points, backend=backend)
            if not args.no_mlflow:
                url = dbs.url("mlflow_bench")
                step(f"{backend}: MLflow log_metric x {args.mlflow_sync} sync, x {args.mlflow_async} async")
                res["mlflow_calls"] = run_child(
                    "mlflow_calls", url=url, n_sync=args.mlflow_sync, n_async=args.mlflow_async, artifacts=artifacts
                )
                step(f"{backend}: MLflow log_batch of {args.mlflow_points:,} points")
                res["mlflow_batch"] = run_child("mlflow_batch", url=url, n=args.mlflow_points, artifacts=artifacts)

            calls, ingest, raw = res["mt_calls"], res["mt_ingest"], res["raw"]
            mc, mb = res.get("mlflow_calls"), res.get("mlflow_batch")
            calls_ok = calls["median_us"] <= TARGETS["call"]
            rows.append(
                Row(
                    "log_metric median (µs/call)",
                    backend,
                    _us(calls["median_us"]),
                    f"{_us(mc['sync']['median_us'])} sync / {_us(mc['async']['median_us'])} async" if mc else "-",
                    target=f"<= {TARGETS['call']:g}",
                    ok=calls_ok,
                )
            )
            rows.append(
                Row(
                    "log_metric p99 (µs/call)",
                    backend,
                    _us(calls["p99_us"]),
                    f"{_us(mc['sync']['p99_us'])} sync / {_us(mc['async']['p99_us'])} async" if mc else "-",
                )
            )
            rows.append(Row("log_metric mean (µs/call)", backend, _us(calls["mean_us"])))
            rows.append(Row("log_metric tight-loop mean (µs/call)", backend, _us(calls["tight_mean_us"])))
            target = TARGETS[f"ingest_{backend}"]
            stored_ok = ingest["stored"] == ingest["expected"] and calls["stored"] == calls["expected"]
            rows.append(
                Row(
                    f"ingest {args.points:,} pts (points/s)",
                    backend,
                    _rate(ingest["rate"]),
                    f"{_rate(mb['rate'])} log_batch" if mb else "-",
                    f"{_rate(raw['rate'])} raw",
                    target=f">= {target:,.0f}",
                    ok=ingest["rate"] >= target,
                )
            )
            if mc:
                rows.append(Row("  MLflow async log_metric ingest (points/s)", backend, "-", _rate(mc["async_rate"])))
            rows.append(
                Row(
                    "  caller loop / flush wait (s)",
                    backend,
                    f"{ingest['caller_seconds']:.2f} / {ingest['flush_wait_seconds']:.2f}",
                )
            )
            rows.append(
                Row(
                    "  client CPU (µs/point, all threads)",
                    backend,
                    f"{ingest['cpu_us_per_point']:.2f}",
                    reference=f"{raw['cpu_us_per_point']:.2f} raw",
                )
            )
            rows.append(
                Row(
                    "ingest peak RSS growth (MiB)",
                    backend,
                    f"{ingest['rss_delta_mib']:,.1f}",
                    f"{mb['rss_delta_mib']:,.1f} ({mb['points'] // 1000}k pts)" if mb else "-",
                )
            )
            rows.append(Row("  peak queued rows", backend, f"{ingest['peak_queue']:,}"))
            traced = res.get("mt_ingest_traced")
            if traced:
                rows.append(
                    Row(
                        "  tracemalloc peak (MiB) / rate",
                        backend,
                        f"{traced['tracemalloc_peak_mib']:,.1f} / {_rate(traced['rate'])}",
                    )
                )
            rows.append(
                Row(
                    "all points stored",
                    backend,
                    f"{ingest['stored']:,}/{ingest['expected']:,}",
                    target="all",
                    ok=stored_ok,
                )
            )
    finally:
        if not args.keep:
            for dbs in all_dbs:
                dbs.drop()
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept: {workdir} and databases {[d for x in all_dbs for d in x.made]}", file=sys.stderr)

    print()
    print(
        f"modeltrail logging benchmark: {args.points:,} ingest points, {args.calls:,} timed calls; "
        f"MLflow: {args.mlflow_sync} sync + {args.mlflow_async} async calls, log_batch of {args.mlflow_points:,} points"
    )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; every figure from its own child process\n")
    print_table(rows)
    print()
    timer = [results[b]["mt_calls"]["timer_ns"] for b in args.backends]
    if timer:
        print(f"per-call figures include the timer pair itself (~{max(timer):.0f} ns); the tight loop does not")
    print("reference = the bare driver's executemany of the same rows into the same table, 20,000 rows a commit")
    print(f"ML frameworks imported by `import modeltrail` / `.Tracker`: {', '.join(forbidden) or 'none'}")
    top = ", ".join(f"{name} {ms:.0f} ms" for name, ms in results["import"]["top_tracker"])
    print(f"slowest imports behind modeltrail.Tracker (cumulative): {top}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    failed = any(r.ok is False for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
