#!/usr/bin/env python3
"""Many trainers at once: aggregate ingest on one MariaDB server and on a Galera cluster.

For 1, 16 and 64 concurrent trainer processes (``--trainers``), each process opens a Tracker,
waits for a common start, then runs ``--trainings`` trainings of one shared model, logging
``--points`` loss points each and flushing at the end of each. The figure is the aggregate
rate: every point of every trainer divided by the wall time from the common start until the
last trainer's last flush returned. After each run it checks what a user would: versions 1..N
with no gap, every training finished, every point there exactly once, no error in any trainer.

Targets: ``server`` is the MariaDB at 127.0.0.1:3306 (``BENCH_MYSQL_*`` as the other benchmarks),
``cluster`` is `.ci/cluster`'s HAProxy at 127.0.0.1:4300 (``MODELTRAIL_CLUSTER_URL``)::

    .ci/cluster start
    .venv-bench/bin/python benchmarks/bench_concurrency.py
    .venv-bench/bin/python benchmarks/bench_concurrency.py --trainers 1,16 --targets server --points 5000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
import uuid
from typing import Any

from _common import mysql_url

CLUSTER_URL = os.environ.get("MODELTRAIL_CLUSTER_URL", "mysql+pymysql://root@127.0.0.1:4300/")
CLUSTER_NODES = os.environ.get(
    "MODELTRAIL_CLUSTER_NODES",
    "mysql+pymysql://root@127.0.0.1:4306/,mysql+pymysql://root@127.0.0.1:4307/,mysql+pymysql://root@127.0.0.1:4308/",
).split(",")
MODEL = "bench-concurrency"


def _admin(url: str, sql: str) -> Any:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            result = conn.execute(text(sql))
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


def _database(base: str, name: str, nodes: list[str]) -> str:
    """A fresh database ``name`` reachable through ``base``; its URL (once every node in ``nodes`` has it)."""
    from sqlalchemy.engine import make_url

    _admin(base, f"DROP DATABASE IF EXISTS `{name}`")
    _admin(base, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    deadline = time.monotonic() + 60
    for node in nodes:  # DDL reaches the other nodes of a cluster in order, not at once
        sql = f"SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{name}'"
        while _admin(node, sql) != 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not reach {node}")
            time.sleep(0.2)
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def trainer(url: str, worker: int, trainings: int, points: int, ready: Any, start: Any, results: Any) -> None:
    import modeltrail

    try:
        tracker = modeltrail.Tracker(url)
        ready.put(worker)
        start.wait()
        for t in range(trainings):
            with tracker.training(MODEL, params={"worker": worker, "t": t}) as run:
                for step in range(points):
                    run.log_metric("loss", 1.0 / (step + 1), step=step)
                run.flush()
        left = tracker.sync()
        tracker.close()
        results.put((worker, time.time(), left, None))
    except BaseException as e:
        results.put((worker, time.time(), None, f"{type(e).__name__}: {e}"))


def measure(url: str, trainers: int, trainings: int, points: int) -> tuple[float, str]:
    """Aggregate points/s of ``trainers`` processes writing through ``url``, and the check's verdict."""
    import modeltrail

    modeltrail.Tracker(url).close()  # the schema exists before the clocks start
    ctx = mp.get_context("spawn")
    start, ready, results = ctx.Event(), ctx.Queue(), ctx.Queue()
    args = (trainings, points, ready, start, results)
    procs = [ctx.Process(target=trainer, args=(url, w, *args)) for w in range(trainers)]
    for p in procs:
        p.start()
    for _ in procs:  # every child has imported modeltrail and connected before the clock starts
        ready.get(timeout=600)
    t0 = time.time()
    start.set()
    reports = [results.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    elapsed = max(r[1] for r in reports) - t0
    rate = trainers * trainings * points / elapsed
    return rate, _check(url, reports, trainers * trainings, points)


def _check(url: str, reports: list[tuple[Any, ...]], versions: int, points: int) -> str:
    errors = [r[3] for r in reports if r[3]]
    if errors:
        return f"ERROR in a trainer: {errors[0]}"
    if any(r[2] for r in reports):
        return "spool not empty"
    numbers = _admin(url, "SELECT GROUP_CONCAT(number ORDER BY number SEPARATOR ',') FROM versions")
    if [int(x) for x in str(numbers).split(",")] != list(range(1, versions + 1)):
        return "versions not gapless"
    found = _admin(url, "SELECT COUNT(*) FROM metric_points")
    distinct = _admin(url, "SELECT COUNT(*) FROM (SELECT DISTINCT training_id, step FROM metric_points) d")
    if found != versions * points or distinct != found:
        return f"points: {found} stored, {distinct} distinct, {versions * points} logged"
    return "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainers", default="1,16,64", help="comma-separated counts of concurrent trainers")
    parser.add_argument("--targets", default="server,cluster", help="server, cluster or both")
    parser.add_argument("--trainings", type=int, default=2, help="trainings per trainer (each makes a version)")
    parser.add_argument("--points", type=int, default=10_000, help="points per training")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.trainers.split(",")]
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    bases = {"server": mysql_url("mysql").split("?")[0].rsplit("/", 1)[0] + "/", "cluster": CLUSTER_URL}
    table: dict[tuple[str, int], tuple[float, str]] = {}
    status = 0
    for target in targets:
        for n in counts:
            name = f"mt_bench_conc_{uuid.uuid4().hex[:8]}"
            try:
                url = _database(bases[target], name, CLUSTER_NODES if target == "cluster" else [])
            except Exception as e:
                print(f"{target}: not reachable ({type(e).__name__}: {e}); skipped", file=sys.stderr)
                break
            try:
                rate, verdict = measure(url, n, args.trainings, args.points)
            finally:
                _admin(bases[target], f"DROP DATABASE IF EXISTS `{name}`")
            table[(target, n)] = (rate, verdict)
            status |= verdict != "ok"
            print(f"{target:8} {n:3} trainers: {rate:10,.0f} points/s  check: {verdict}", flush=True)
    print()
    print(f"aggregate ingest, points/s ({args.trainings} trainings x {args.points:,} points per trainer)")
    print(f"{'trainers':>8}  " + "  ".join(f"{t:>22}" for t in targets))
    for n in counts:
        cells = []
        for t in targets:
            rate, verdict = table.get((t, n), (float("nan"), "-"))
            cells.append(f"{rate:>12,.0f} ({verdict})".rjust(22))
        print(f"{n:>8}  " + "  ".join(cells))
    return status


if __name__ == "__main__":
    sys.exit(main())
