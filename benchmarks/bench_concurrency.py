#!/usr/bin/env python3
"""Many trainers at once: aggregate ingest on one MariaDB server and on a Galera cluster.

For 1, 16 and 64 concurrent trainer processes (``--trainers``), each process opens a Tracker,
waits for a common start, then runs ``--trainings`` trainings of one shared model, logging
``--points`` loss points each and flushing at the end of each. The figure is the aggregate
rate: every point of every trainer divided by the wall time from the common start until the
last trainer's last flush returned. After each run it checks what a user would: versions 1..N
with no gap, every training finished, every point there exactly once, no error in any trainer.

Right before and right after each row, on the same target, the bare driver's rate is measured:
one process inserting the same point count as one trainer (``--trainings`` x ``--points``, each
training's points one PyMySQL ``executemany`` and one COMMIT) into ``metric_points`` of a fresh
ledger (the same columns, primary key and foreign keys), rows built before the clock starts. The
two runs together are the row's reference (a short run alone swings with the machine's load);
each row prints its ratio to it, and the end says whether the goals hold: one trainer at or above
the bare driver, 16 trainers together at least twice it.

Each trainer first makes one 100-point training of another model, off the clock, so that a
process's first-use costs (lazy imports, statement compilation: about 0.2 s of CPU, 10 µs a point
over 20,000 points) are not counted as ingest; ``--cold`` counts them. Beside each row: the load
average, CPU per point in the writing processes and in the target's ``mariadbd`` (read from
``/proc``; a server shared with other work counts that too), how busy both kept the machine's
cores, and InnoDB row-lock waits: where the time went.

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
import warnings
from dataclasses import dataclass
from typing import Any

from _common import mysql_url

CLUSTER_URL = os.environ.get("MODELTRAIL_CLUSTER_URL", "mysql+pymysql://root@127.0.0.1:4300/")
CLUSTER_NODES = os.environ.get(
    "MODELTRAIL_CLUSTER_NODES",
    "mysql+pymysql://root@127.0.0.1:4306/,mysql+pymysql://root@127.0.0.1:4307/,mysql+pymysql://root@127.0.0.1:4308/",
).split(",")
MODEL = "bench-concurrency"
WARMUP = "bench-concurrency-warmup"


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


def _quiet() -> None:
    """No notice per process that the ledger has no artifact store (64 trainers would print 64); others stay."""
    warnings.filterwarnings("ignore", message=".*has no artifact store.*")


def trainer(
    url: str, worker: int, trainings: int, points: int, warm: bool, ready: Any, start: Any, results: Any
) -> None:
    import modeltrail

    _quiet()
    try:
        tracker = modeltrail.Tracker(url)
        if warm:  # a process's first-use costs (lazy imports, compiled statements), paid once, off the clock
            with tracker.training(WARMUP, params={"worker": worker}) as run:
                for step in range(100):
                    run.log_metric("loss", 1.0, step=step)
        ready.put(worker)
        start.wait()
        cpu = time.process_time()
        for t in range(trainings):
            with tracker.training(MODEL, params={"worker": worker, "t": t}) as run:
                for step in range(points):
                    run.log_metric("loss", 1.0 / (step + 1), step=step)
                run.flush()
        left = tracker.sync()
        tracker.close()
        results.put((worker, time.time(), left, None, time.process_time() - cpu))
    except BaseException as e:
        results.put((worker, time.time(), None, f"{type(e).__name__}: {e}", 0.0))


def bare(url: str, trainings: int, points: int, ready: Any, go: Any, results: Any) -> None:
    """One process: a trainer's point count through the bare driver, into a fresh ledger's ``metric_points``."""
    _quiet()
    try:
        import pymysql
        from sqlalchemy import text
        from sqlalchemy.engine import make_url

        import modeltrail

        with modeltrail.Tracker(url) as tracker:  # the schema, a training and its key id, made by modeltrail
            with tracker.training(MODEL) as run:
                run.log_metric("loss", 1.0, step=0)
                run.flush()
                training_id = run.id
            key_id = tracker.store.run(lambda s: s.execute(text("SELECT id FROM metric_keys")).scalar())
        ts = time.time()
        # The rows modeltrail's writer stores for one trainer: seq is each point's ordinal in its metric.
        rows = [(training_id, key_id, i, i, 1.0 / (i + 1), 0, ts) for i in range(1, trainings * points + 1)]
        sql = (
            "INSERT INTO metric_points (training_id, key_id, step, seq, value, kind, ts) VALUES (%s,%s,%s,%s,%s,%s,%s)"
        )
        parts = make_url(url)
        db = pymysql.connect(host=parts.host, port=parts.port or 3306, user=parts.username,
                             password=parts.password or "", database=parts.database, charset="utf8mb4")  # fmt: skip
        ready.put(True)
        go.wait()
        t0, cpu = time.perf_counter(), time.process_time()
        with db.cursor() as cur:
            for start in range(0, len(rows), points):  # a training's points a statement batch, one commit each
                cur.executemany(sql, rows[start : start + points])
                db.commit()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu
        db.close()
        results.put((len(rows), elapsed, cpu, None))
    except BaseException as e:
        results.put((0, float("nan"), 0.0, f"{type(e).__name__}: {e}"))


@dataclass
class Figures:
    """One measured run: its rate, and where its time went."""

    points: int
    wall: float  # seconds
    client_cpu: float  # seconds of CPU in the writing processes, summed
    server_cpu: float | None  # seconds of CPU in the target's mariadbd processes (None: not readable here)
    lock_waits: int  # InnoDB row-lock waits on the target's servers meanwhile
    lock_seconds: float

    @property
    def rate(self) -> float:
        return self.points / self.wall

    def __add__(self, other: Figures) -> Figures:
        """Two runs as one: their points over their wall times together."""
        server = None if self.server_cpu is None or other.server_cpu is None else self.server_cpu + other.server_cpu
        return Figures(self.points + other.points, self.wall + other.wall, self.client_cpu + other.client_cpu, server,
                       self.lock_waits + other.lock_waits, self.lock_seconds + other.lock_seconds)  # fmt: skip


class Probe:
    """The target's servers, read around a run: mariadbd CPU (``/proc``, local servers only) and row-lock waits.

    A server shared with other work counts that work's CPU too; the cluster's nodes serve only this.
    """

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.pids: list[int] = []
        for url in urls:
            try:
                with open(str(_admin(url, "SELECT @@pid_file"))) as f:
                    self.pids.append(int(f.read().split()[0]))
            except (OSError, ValueError, IndexError):
                self.pids = []
                break

    def sample(self) -> tuple[float | None, int, float]:
        cpu: float | None = None
        try:
            ticks = 0
            for pid in self.pids:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
            cpu = ticks / os.sysconf("SC_CLK_TCK") if self.pids else None
        except (OSError, ValueError, IndexError):
            cpu = None
        waits, millis = 0, 0
        for url in self.urls:
            waits += int(_admin(url, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                     "WHERE VARIABLE_NAME = 'INNODB_ROW_LOCK_WAITS'"))  # fmt: skip
            millis += int(_admin(url, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                      "WHERE VARIABLE_NAME = 'INNODB_ROW_LOCK_TIME'"))  # fmt: skip
        return cpu, waits, millis / 1000

    def figures(self, before: tuple[float | None, int, float], points: int, wall: float, client_cpu: float) -> Figures:
        after = self.sample()
        server = after[0] - before[0] if after[0] is not None and before[0] is not None else None
        return Figures(points, wall, client_cpu, server, after[1] - before[1], after[2] - before[2])


def _bare(target: str, base: str, trainings: int, points: int, probe: Probe) -> Figures:
    name, url = _fresh(target, base)
    try:
        return measure_bare(url, trainings, points, probe)
    finally:
        _admin(base, f"DROP DATABASE IF EXISTS `{name}`")


def measure_bare(url: str, trainings: int, points: int, probe: Probe) -> Figures:
    """The bare driver's ``executemany`` (see :func:`bare`), in a spawned process like a trainer."""
    ctx = mp.get_context("spawn")
    ready, go, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=bare, args=(url, trainings, points, ready, go, results))
    proc.start()
    ready.get(timeout=600)
    before = probe.sample()
    go.set()
    n, wall, cpu, error = results.get(timeout=1800)
    figures = probe.figures(before, n, wall, cpu)
    proc.join(timeout=60)
    if error:
        raise RuntimeError(f"the bare driver's run failed: {error}")
    return figures


def measure(url: str, trainers: int, trainings: int, points: int, warm: bool, probe: Probe) -> tuple[Figures, str]:
    """Aggregate ingest of ``trainers`` processes writing through ``url``, and the check's verdict."""
    import modeltrail

    _quiet()
    modeltrail.Tracker(url).close()  # the schema exists before the clocks start
    ctx = mp.get_context("spawn")
    start, ready, results = ctx.Event(), ctx.Queue(), ctx.Queue()
    args = (trainings, points, warm, ready, start, results)
    procs = [ctx.Process(target=trainer, args=(url, w, *args)) for w in range(trainers)]
    for p in procs:
        p.start()
    for _ in procs:  # every child has imported modeltrail and connected before the clock starts
        ready.get(timeout=600)
    before = probe.sample()
    t0 = time.time()
    start.set()
    reports = [results.get(timeout=1800) for _ in procs]
    figures = probe.figures(before, trainers * trainings * points, max(r[1] for r in reports) - t0,
                            sum(r[4] for r in reports))  # fmt: skip
    for p in procs:
        p.join(timeout=60)
    return figures, _check(url, reports, trainers * trainings, points)


def _check(url: str, reports: list[tuple[Any, ...]], versions: int, points: int) -> str:
    errors = [r[3] for r in reports if r[3]]
    if errors:
        return f"ERROR in a trainer: {errors[0]}"
    if any(r[2] for r in reports):
        return "spool not empty"
    model = f"(SELECT id FROM models WHERE name = '{MODEL}')"  # not the warm-up's
    numbers = _admin(
        url, f"SELECT GROUP_CONCAT(number ORDER BY number SEPARATOR ',') FROM versions WHERE model_id = {model}"
    )
    if [int(x) for x in str(numbers).split(",")] != list(range(1, versions + 1)):
        return "versions not gapless"
    points_of_model = f"metric_points WHERE training_id IN (SELECT id FROM trainings WHERE model_id = {model})"
    found = _admin(url, f"SELECT COUNT(*) FROM {points_of_model}")
    distinct = _admin(url, f"SELECT COUNT(*) FROM (SELECT DISTINCT training_id, step FROM {points_of_model}) d")
    if found != versions * points or distinct != found:
        return f"points: {found} stored, {distinct} distinct, {versions * points} logged"
    return "ok"


def _fresh(target: str, base: str) -> tuple[str, str]:
    name = f"mt_bench_conc_{uuid.uuid4().hex[:8]}"
    return name, _database(base, name, CLUSTER_NODES if target == "cluster" else [])


#: The goals: (trainers, at least this many times the bare driver's executemany on the same server).
GOALS = ((1, 1.0), (16, 2.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainers", default="1,16,64", help="comma-separated counts of concurrent trainers")
    parser.add_argument("--targets", default="server,cluster", help="server, cluster or both")
    parser.add_argument("--trainings", type=int, default=2, help="trainings per trainer (each makes a version)")
    parser.add_argument("--points", type=int, default=10_000, help="points per training")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="no warm-up training before the clock: count each trainer process's first-use costs in its rate",
    )
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.trainers.split(",")]
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    bases = {"server": mysql_url("mysql").split("?")[0].rsplit("/", 1)[0] + "/", "cluster": CLUSTER_URL}
    #: (target, trainers) -> (the trainers' figures, the bare driver's beside them, the check, the load average)
    table: dict[tuple[str, int], tuple[Figures, Figures, str, float]] = {}
    status = 0
    for target in targets:
        try:
            probe = Probe(CLUSTER_NODES if target == "cluster" else [bases[target]])
        except Exception as e:
            print(f"{target}: not reachable ({type(e).__name__}: {e}); skipped", file=sys.stderr)
            continue
        for n in counts:
            before = _bare(target, bases[target], args.trainings, args.points, probe)
            name, url = _fresh(target, bases[target])
            try:
                figures, verdict = measure(url, n, args.trainings, args.points, not args.cold, probe)
            finally:
                _admin(bases[target], f"DROP DATABASE IF EXISTS `{name}`")
            load = os.getloadavg()[0]
            after = _bare(target, bases[target], args.trainings, args.points, probe)
            bare_figures = before + after
            table[(target, n)] = (figures, bare_figures, verdict, load)
            status |= verdict != "ok"
            ratio = figures.rate / bare_figures.rate
            line = f"{target:8} {n:3} trainers: {figures.rate:8,.0f} points/s; bare executemany before and after"
            print(f"{line} {before.rate:,.0f} and {after.rate:,.0f} ({bare_figures.rate:,.0f} together), ratio "
                  f"{ratio:.2f}, load {load:.1f}, check: {verdict}", flush=True)  # fmt: skip
    print()
    warmed = (
        "cold processes" if args.cold else "each warmed up off the clock by one 100-point training of another model"
    )
    print(f"aggregate ingest ({args.trainings} trainings x {args.points:,} points per trainer, {warmed})")
    print("bare = one process's PyMySQL executemany of as many points, right before and after each row, together")
    print("CPU: µs per point in the writing processes (client) and in the target's mariadbd (server); busy = both")
    print(f"together over {os.cpu_count()} cores x the wall time; lock waits: InnoDB row-lock waits (seconds waited)")
    print(f"{'target':8} {'trainers':>8} {'points/s':>9} {'bare':>7} {'ratio':>5} {'load':>5}  "
          f"{'client':>6} {'server':>6} {'busy':>5}  {'bare: client':>12} {'server':>6} {'busy':>5}  "
          "lock waits  check")  # fmt: skip
    for target in targets:
        for n in counts:
            if (target, n) not in table:
                continue
            figures, bare_figures, verdict, load = table[(target, n)]
            print(f"{target:8} {n:>8} {figures.rate:>9,.0f} {bare_figures.rate:>7,.0f} "
                  f"{figures.rate / bare_figures.rate:>5.2f} {load:>5.1f}  {_cpu(figures)}  {_cpu(bare_figures):>24}  "
                  f"{figures.lock_waits:>4} ({figures.lock_seconds:.1f}s)  {verdict}")  # fmt: skip
    print()
    for target in targets:
        for n, factor in GOALS:
            if (target, n) not in table:
                continue
            figures, bare_figures, _verdict, _load = table[(target, n)]
            ratio = figures.rate / bare_figures.rate
            met = "met" if ratio >= factor else "NOT met"
            print(f"goal {target}: {n} trainer(s) >= {factor:g} x bare executemany: {ratio:.2f} x, {met}")
    return status


def _cpu(f: Figures) -> str:
    """Client and server CPU per point (µs), and how busy both kept the machine's cores."""
    server = f"{f.server_cpu / f.points * 1e6:6.1f}" if f.server_cpu is not None else "     -"
    busy = (f.client_cpu + (f.server_cpu or 0.0)) / (f.wall * (os.cpu_count() or 1))
    return f"{f.client_cpu / f.points * 1e6:6.1f} {server} {busy:5.0%}"


if __name__ == "__main__":
    sys.exit(main())
