#!/usr/bin/env python3
"""Registry queries at scale: modeltrail against MLflow on the same ledger in MariaDB.

Builds one model with 1,000 versions and 1,000,000 metric points (two metrics, 500
steps each per version; ``--scale 10m``: 10,000 versions, 10,000,000 points) in MariaDB,
through modeltrail's own API (``Tracker.training``, ``log_metric`` through the background
writer, ``finish``: the path users take, not a bulk insert) from ``--workers`` processes at
once, then deployments to ``staging`` and ``production``. The same data goes into an MLflow
SQL tracking store and model registry in a second MariaDB database through ``MlflowClient``
(``create_run``, ``log_batch``, ``create_model_version``, aliases for the deployments); above
two million points MLflow's points go into its tables by ``executemany`` instead of
``log_batch`` (``--mlflow-metrics``), which would take most of an hour at 10M.

Then it times, median of ``--repeat`` calls after a warm-up, each question both ways:

* leaderboard of all versions by a metric (modeltrail: best over each training's
  history, and last value; MLflow: ``search_runs(order_by=["metrics.val_auc DESC"])``,
  which can only rank by the last value);
* the best version (the top of each);
* a comparison of two versions (MLflow: two ``get_run`` calls, diffed by the caller);
* what is in production (MLflow: ``get_model_version_by_alias``), and which version
  was in production at a past moment (MLflow keeps no alias history);
* all versions of the model (MLflow: ``search_model_versions``);
* a search of trainings by params and a metric, best 20 (``Tracker.trainings(where=...)``;
  MLflow: ``search_runs(filter_string=...)``; MLflow compares params as text only, hence ``LIKE``).

It prints MariaDB's ``EXPLAIN`` of every statement the leaderboard, comparison and
production calls run (captured from the engine, with their real parameters), and exits
1 when a leaderboard, a comparison or "what is in production" takes 50 ms or more::

    .venv-bench/bin/python benchmarks/bench_queries.py                 # the full run (~15 min)
    .venv-bench/bin/python benchmarks/bench_queries.py --versions 100 --points 100000 --no-mlflow
    .venv-bench/bin/python benchmarks/bench_queries.py --keep          # keep the databases ...
    .venv-bench/bin/python benchmarks/bench_queries.py --reuse         # ... and time them again
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from _common import MLFLOW_BATCH, drop_mysql_database, fresh_mysql_database, mysql_admin, mysql_url
from _common import step as _step

#: ``BENCH_DB_SUFFIX`` keeps runs of two checkouts on one server apart.
LEDGER_DB = "mt_bench_queries" + os.environ.get("BENCH_DB_SUFFIX", "")
MLFLOW_DB = "mlflow_bench_queries" + os.environ.get("BENCH_DB_SUFFIX", "")
MODEL = "churn-rf"
METRICS = ("val_auc", "val_loss")
TARGET_MS = 50.0
#: One long training beside the versions: a metric history of this many points (``--history-points``).
LONG_MODEL, LONG_METRIC = "long-run", "train_loss"
#: A downsampled 1,000,000-point history must come back within this.
HISTORY_TARGET_MS = 100.0
#: ``--scale``: (versions, points across them).
SCALES = {"1m": (1_000, 1_000_000), "10m": (10_000, 10_000_000)}

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # MLflow runs in this process, not in a child
os.environ.setdefault("DO_NOT_TRACK", "true")


# ------------------------------------------------------------------- data
def curve(version: int, steps: int) -> list[tuple[int, float, float]]:
    """(step, val_auc, val_loss) of one version: rises, peaks, then overfits, so best != last."""
    rng = random.Random(version)
    ceiling = 0.80 + 0.15 * rng.random()
    peak = int(steps * (0.3 + 0.5 * rng.random()))
    out = []
    for step in range(steps):
        if step <= peak:
            auc = 0.5 + (ceiling - 0.5) * (step + 1) / (peak + 1)
        else:
            auc = ceiling - 0.05 * (step - peak) / steps
        auc += rng.gauss(0, 0.003)
        out.append((step, auc, 1.0 - auc + rng.gauss(0, 0.003)))
    return out


def params_of(version: int) -> dict[str, Any]:
    rng = random.Random(-version)
    return {
        "learning_rate": round(rng.choice([0.01, 0.03, 0.1, 0.3]), 3),
        "max_depth": rng.randint(3, 12),
        "n_estimators": rng.choice([100, 200, 400, 800]),
        "seed": version,
    }


#: The same search both ways (MLflow's params are text, compared with = != LIKE only): depth 10-12.
SEARCH = "params.max_depth LIKE '1_' and metrics.val_auc > 0.85"


# -------------------------------------------------------------- databases
def count(database: str, sql: str) -> int:
    try:
        return int(mysql_admin(sql.replace("{db}", f"`{database}`"))[0][0])
    except Exception:  # a missing database or table counts as empty
        return -1


def step(message: str) -> None:
    _step(message, file=sys.stdout)  # between the timings this script prints as it goes


# ---------------------------------------------------------------- building
class Plan:
    """Which versions get deployed where, the same in both systems: every 100th of the versions to
    staging, every 10th to production, then one production rollback (1,000 versions: 100 and 10)."""

    def __init__(self, versions: int) -> None:
        self.versions = versions
        self.staging_every = max(versions // 100, 1)
        self.production_every = max(versions // 10, 1)

    def actions(self, version: int) -> list[tuple[str, str]]:
        out = []
        if version % self.staging_every == 0:
            out.append(("deploy", "staging"))
        if version % self.production_every == 0:
            out.append(("deploy", "production"))
        if version == self.versions:
            out.append(("rollback", "production"))
        return out


def _build_share(url: str, seeds: list[int], steps: int) -> None:
    """One builder process: a training per seed, each logging its curve through ``log_metric``."""
    import modeltrail

    with modeltrail.Tracker(url) as tracker:
        for i, v in enumerate(seeds, 1):
            with tracker.training(MODEL, framework="sklearn", model_type="classifier", params=params_of(v)) as run:
                log = run.log_metric
                for s, auc, loss in curve(v, steps):
                    log("val_auc", auc, s)
                    log("val_loss", loss, s)
            if not run.version:
                raise RuntimeError(f"training {run.id} made no version")
            if i % max(len(seeds) // 4, 1) == 0:
                step(f"  modeltrail builder {os.getpid()}: {i:,} of {len(seeds):,} trainings")


def build_modeltrail(url: str, versions: int, steps: int, plan: Plan, workers: int) -> dict[str, Any]:
    """``versions`` trainings of ``MODEL`` from ``workers`` processes at once, as a team's trainers would.

    Versions are numbered in the order trainings finish, so version N holds the curve of the seed
    its ``seed`` param names (``seeds_of``). The deployments follow once every version exists.
    """
    import modeltrail

    t0 = time.perf_counter()
    _build_share(url, [1], steps)  # creates the schema and the model before the builders race
    shares = [list(range(2 + w, versions + 1, workers)) for w in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_build_share, [url] * workers, shares, [steps] * workers))
    with modeltrail.Tracker(url) as tracker:
        numbers = [v.number for v in tracker.versions(MODEL)]
        if numbers != list(range(1, versions + 1)):
            raise RuntimeError(f"versions are not 1..{versions}: {len(numbers)} versions, last {numbers[-1:]}")
        for v in range(1, versions + 1):
            for action, env in plan.actions(v):
                if action == "deploy":
                    tracker.deploy(MODEL, v, env, reason=f"bench v{v}")
                else:
                    tracker.rollback(MODEL, env, reason="bench rollback")
    return {"seconds": time.perf_counter() - t0}


def seeds_of(tracker: Any) -> dict[int, int]:
    """Version number -> the seed whose curve and params it holds (MLflow's version N gets the same)."""
    return {t.version: int(t.params["seed"]) for t in tracker.trainings(MODEL) if t.version is not None}


def long_curve(points: int) -> Iterator[tuple[int, float]]:
    """A noisy decaying loss with one spike: what a downsampled curve must still show."""
    rng = random.Random(7)
    for step in range(points):
        yield step, (5.0 if step == points * 2 // 3 else 0.0) + 2.0 / (1 + step / 1000) + rng.gauss(0, 0.01)


def build_long_history(url: str, points: int) -> dict[str, Any]:
    """One training of ``LONG_MODEL`` with a ``points``-point history of ``LONG_METRIC``, through log_metric."""
    import modeltrail

    tracker = modeltrail.Tracker(url)
    t0 = time.perf_counter()
    with tracker.training(LONG_MODEL, params={"epochs": 1}) as run:
        log = run.log_metric
        for s, value in long_curve(points):
            log(LONG_METRIC, value, s)
    seconds = time.perf_counter() - t0
    tracker.close()
    return {"seconds": seconds}


def mlflow_bulk_metrics(url: str, rows: list[tuple[str, str, float, int, int]]) -> None:
    """(run id, key, value, ms, step) rows into MLflow's ``metrics`` table by its own SQLAlchemy models.

    What ``log_batch`` stores, at the driver's ``executemany`` speed: at 10,000,000 points
    ``log_batch`` (about 4,000 points/s here) would take most of an hour. Rows go in the table's
    primary-key order, committed every 50,000; ``latest_metrics`` gets each run's last step per
    key, as ``log_batch`` keeps it.
    """
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric
    from sqlalchemy import create_engine

    rows.sort(key=lambda r: (r[1], r[3], r[4], r[0], r[2]))  # (key, timestamp, step, run_uuid, value)
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    engine = create_engine(url)
    with engine.connect() as conn:
        for start in range(0, len(rows), 50_000):
            chunk = []
            for run_id, key, value, ts, s in rows[start : start + 50_000]:
                row = {"run_uuid": run_id, "key": key, "value": value, "timestamp": ts, "step": s, "is_nan": False}
                chunk.append(row)
                if (run_id, key) not in latest or s >= latest[run_id, key]["step"]:
                    latest[run_id, key] = row
            conn.execute(SqlMetric.__table__.insert(), chunk)
            conn.commit()
        conn.execute(SqlLatestMetric.__table__.insert(), list(latest.values()))
        conn.commit()
    engine.dispose()


def build_mlflow(
    url: str, steps: int, plan: Plan, workers: int, artifacts: str, seeds: dict[int, int], *, bulk: bool
) -> dict[str, Any]:
    """One run per seed (``create_run``, params and metrics by ``log_batch``, or metrics in bulk), then
    MLflow's version N from the run of modeltrail's version N's seed, and aliases for the deployments."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    found = client.get_experiment_by_name(MODEL)
    versions = len(seeds)
    run_ids: dict[int, str] = {}
    if found is None:
        experiment = client.create_experiment(MODEL, artifact_location=f"file://{artifacts}")
        client.create_registered_model(MODEL)
    else:  # an interrupted load: its finished runs stay, the rest is made now
        experiment = found.experiment_id
        for r in client.search_runs([experiment], "attributes.status = 'FINISHED'", max_results=50_000):
            run_ids[int(r.info.run_name.rsplit("-v", 1)[1])] = r.info.run_id
        step(f"  mlflow: resuming with {len(run_ids):,} finished runs")
    lock = threading.Lock()
    ts = int(time.time() * 1000)
    t0 = time.perf_counter()

    def one_run(v: int) -> None:
        run = client.create_run(experiment, run_name=f"{MODEL}-v{v}")
        rid = run.info.run_id
        client.log_batch(rid, params=[Param(k, str(val)) for k, val in params_of(v).items()])
        if not bulk:
            metrics = []
            for s, auc, loss in curve(v, steps):
                metrics.append(Metric("val_auc", auc, ts, s))
                metrics.append(Metric("val_loss", loss, ts, s))
            for start in range(0, len(metrics), MLFLOW_BATCH):
                client.log_batch(rid, metrics=metrics[start : start + MLFLOW_BATCH])
        client.set_terminated(rid)
        with lock:
            run_ids[v] = rid
            if len(run_ids) % max(versions // 10, 1) == 0:
                step(f"  mlflow: {len(run_ids):,} runs, {time.perf_counter() - t0:.0f}s")

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one_run, sorted(set(seeds.values()) - set(run_ids))))
    if bulk:
        step(f"  mlflow: {versions * steps * 2:,} metric rows in bulk")
        mlflow_bulk_metrics(
            url,
            [(run_ids[v], key, value, ts, s) for v in sorted(run_ids) for s, auc, loss in curve(v, steps)
             for key, value in (("val_auc", auc), ("val_loss", loss))],
        )  # fmt: skip
    production: list[int] = []
    for n in range(1, versions + 1):
        mv = client.create_model_version(MODEL, source=f"file://{artifacts}/v{n}", run_id=run_ids[seeds[n]])
        assert int(mv.version) == n
        for action, env in plan.actions(n):
            if action == "deploy":
                client.set_registered_model_alias(MODEL, env, str(n))
                if env == "production":
                    production.append(n)
            else:
                production.pop()
                client.set_registered_model_alias(MODEL, env, str(production[-1]))
    return {"seconds": time.perf_counter() - t0, "experiment": experiment, "run_ids": run_ids}


def build_mlflow_history(url: str, points: int, *, bulk: bool) -> dict[str, Any]:
    """The same long history as one MLflow run of its own experiment."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    t0 = time.perf_counter()
    run = client.create_run(client.create_experiment(LONG_MODEL))
    rid = run.info.run_id
    ts = int(time.time() * 1000)
    if bulk:
        mlflow_bulk_metrics(url, [(rid, LONG_METRIC, value, ts, s) for s, value in long_curve(points)])
    else:
        batch: list[Any] = []
        for s, value in long_curve(points):
            batch.append(Metric(LONG_METRIC, value, ts, s))
            if len(batch) == MLFLOW_BATCH:
                client.log_batch(rid, metrics=batch)
                batch = []
        if batch:
            client.log_batch(rid, metrics=batch)
    client.set_terminated(rid)
    return {"seconds": time.perf_counter() - t0}


# ----------------------------------------------------------------- timing
def timed(fn: Callable[[], Any], repeat: int, *, warmups: int = 2) -> dict[str, Any]:
    """Wall-clock ms (median, min) and this process's CPU ms (median) of ``repeat`` calls after ``warmups`` calls.

    On a busy machine wall time includes waiting for a core; CPU time is the client's own work.
    """
    result = fn()  # the first of ``warmups`` calls: warm caches and pools on both sides alike
    for _ in range(warmups - 1):
        fn()
    times, cpu = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return {"median": statistics.median(times), "min": min(times), "cpu": statistics.median(cpu), "result": result}


@contextlib.contextmanager
def capture(engine: Any) -> Iterator[list[tuple[str, Any]]]:
    from sqlalchemy import event

    statements: list[tuple[str, Any]] = []

    def on_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


#: Tables that grow with every training and metric point: never read whole.
BIG_TABLES = {"metric_points", "metric_summaries", "params", "trainings", "audit_events", "production_metrics"}


def explain(engine: Any, title: str, fn: Callable[[], Any]) -> bool:
    """Print MariaDB's plan of every SELECT ``fn`` runs; True when no big table is scanned whole.

    A full scan of ``versions`` or ``deployments`` is the right plan here: every row of them
    belongs to the one benchmarked model (with other models present the optimizer switches
    to the (model_id, ...) indexes).
    """
    with capture(engine) as statements:
        fn()
    print(f"\n--- EXPLAIN: {title}")
    ok = True
    with engine.connect() as conn:
        for sql, params in statements:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            rows = conn.exec_driver_sql("EXPLAIN " + sql, params).mappings().all()
            print("  " + " ".join(sql.split())[:150] + ("..." if len(sql) > 150 else ""))
            for r in rows:
                scan = r["type"] == "ALL"
                bad = scan and r["table"] in BIG_TABLES
                ok = ok and not bad
                note = (
                    "   <-- FULL SCAN OF A BIG TABLE" if bad else "   (whole table = this model's rows)" if scan else ""
                )
                print(
                    f"    table={r['table']!s:<18} type={r['type']!s:<7} key={r['key']!s:<45} "
                    f"rows={r['rows']!s:<6} {r['Extra'] or ''}{note}"
                )
    return ok


# --------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), help="1m: 1,000 versions, 1M points; 10m: 10,000 and 10M")
    p.add_argument("--versions", type=int, help="versions of the one model (default 1,000)")
    p.add_argument("--points", type=int, help="metric points across the versions (default 1,000,000)")
    p.add_argument(
        "--history-points",
        type=int,
        default=1_000_000,
        help="points of the one long history (default 1,000,000; 0: none)",
    )
    p.add_argument("--repeat", type=int, default=21, help="timed calls per question (median reported)")
    p.add_argument("--no-mlflow", action="store_true", help="modeltrail only")
    p.add_argument("--mlflow-workers", type=int, default=4, help="threads loading MLflow runs (default 4)")
    p.add_argument(
        "--mlflow-metrics",
        choices=("api", "bulk"),
        help="MLflow's points by log_batch, or by executemany into its tables (default: api up to 1M points)",
    )
    p.add_argument("--workers", type=int, default=4, help="processes building the modeltrail ledger (default 4)")
    p.add_argument("--reuse", action="store_true", help="time databases a --keep run left, if they match")
    p.add_argument("--save", metavar="FILE", help="write the timings as JSON, for --table")
    p.add_argument(
        "--no-whole-history",
        action="store_true",
        help="skip reading the long history whole (minutes with MLflow; the same at every --scale)",
    )
    p.add_argument("--table", nargs=2, metavar=("SMALL", "LARGE"), help="print two --save files side by side")
    p.add_argument(
        "--interleave",
        nargs=2,
        metavar=("SMALL", "LARGE"),
        help="time the index-backed questions on two kept ledgers (BENCH_DB_SUFFIX values), calls alternating",
    )
    p.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.table:
        return table(*args.table)
    if args.interleave:
        return interleave(*args.interleave, repeat=args.repeat)
    versions, points = SCALES[args.scale or "1m"]
    args.versions = args.versions or versions
    args.points = args.points or points
    steps = args.points // (args.versions * len(METRICS))
    if steps < 2:
        print("need at least 2 steps per metric and version", file=sys.stderr)
        return 2
    points = steps * len(METRICS) * args.versions
    plan = Plan(args.versions)
    ledger_url, mlflow_url = mysql_url(LEDGER_DB), mysql_url(MLFLOW_DB)
    artifacts = tempfile.mkdtemp(prefix="mlflow_bench_queries_")

    import modeltrail

    # The long history's model has a version too: count the benchmarked model's only.
    of_model = "{db}.versions v JOIN {db}.models m ON m.id = v.model_id AND m.name = '" + MODEL + "'"
    summaries = " JOIN {db}.metric_summaries s ON s.training_id = v.training_id"
    reuse_ledger = (
        args.reuse
        and count(LEDGER_DB, "SELECT COUNT(*) FROM " + of_model) == args.versions
        and count(LEDGER_DB, "SELECT SUM(s.count) FROM " + of_model + summaries) == points
    )
    if args.reuse and not reuse_ledger and count(LEDGER_DB, "SELECT COUNT(*) FROM {db}.versions") > 0:
        print(f"--reuse: {LEDGER_DB} does not hold this scale; drop it by hand to rebuild", file=sys.stderr)
        return 2
    built: dict[str, Any] = {}
    if reuse_ledger:
        step(f"reusing modeltrail ledger {LEDGER_DB}")
        from modeltrail.cli import main as modeltrail_cli

        if modeltrail_cli(["db", "upgrade", "--uri", ledger_url]) != 0:  # a kept ledger from an older schema
            return 2
    else:
        step(f"building modeltrail ledger: {args.versions:,} versions x {steps * 2} points = {points:,} points")
        built = build_modeltrail(fresh_mysql_database(LEDGER_DB), args.versions, steps, plan, args.workers)
        step(f"  done in {built['seconds']:.0f}s ({points / built['seconds']:,.0f} points/s end to end)")
    long_points = args.history_points
    if long_points and count(LEDGER_DB, "SELECT COUNT(*) FROM {db}.models WHERE name = 'long-run'") != 1:
        step(f"building one training with a {long_points:,}-point history of {LONG_METRIC}")
        done = build_long_history(ledger_url, long_points)
        step(f"  done in {done['seconds']:.0f}s ({long_points / done['seconds']:,.0f} points/s)")
    # InnoDB refreshes index statistics in the background after 10% of a table changed; a
    # freshly loaded ledger may not have them yet, and the optimizer needs them to pick indexes.
    mysql_admin(f"ANALYZE TABLE `{LEDGER_DB}`.metric_summaries, `{LEDGER_DB}`.trainings, `{LEDGER_DB}`.versions, "
                f"`{LEDGER_DB}`.deployments, `{LEDGER_DB}`.params, `{LEDGER_DB}`.models")  # fmt: skip

    tracker = modeltrail.Tracker(ledger_url)
    engine = tracker.store.engine
    seeds = seeds_of(tracker)
    bulk = (args.mlflow_metrics or ("api" if points + args.history_points <= 2_000_000 else "bulk")) == "bulk"
    timeline = tracker.deployments(MODEL, environment="production")
    middle = timeline[len(timeline) // 2].deployed_at + dt.timedelta(milliseconds=1)
    a, b, top = args.versions // 2, args.versions, 10
    n = f"{args.versions:,}"
    questions: list[tuple[str, Callable[[], Any], str]] = [
        (f"leaderboard top {top}, best-ever value", lambda: tracker.leaderboard(MODEL, "val_auc", limit=top), "lb10"),
        (f"leaderboard top {top}, last value", lambda: tracker.leaderboard(MODEL, "val_auc", by="last", limit=top),
         "lb10_last"),
        (f"leaderboard all {n}, best-ever value", lambda: tracker.leaderboard(MODEL, "val_auc"), "lb"),
        (f"leaderboard all {n}, last value", lambda: tracker.leaderboard(MODEL, "val_auc", by="last"), "lb_last"),
        (f"compare v{a} with v{b}", lambda: tracker.compare(MODEL, a, b), "compare"),
        ("what is in production", lambda: tracker.deployment(MODEL, "production"), "prod"),
        ("what was in production at T", lambda: tracker.deployment(MODEL, "production", at=middle), "asof"),
        (f"all {n} versions", lambda: tracker.versions(MODEL), "versions"),
        ("search: params and metric, best 20", lambda: tracker.trainings(
            MODEL, where=SEARCH, order_by="metrics.val_auc desc", limit=20), "search"),
    ]  # fmt: skip
    if long_points:
        long_run = tracker.trainings(LONG_MODEL)[0].id
        h = f"{long_points:,}-point history"
        questions += [
            (
                f"{h}, downsampled to 1,000",
                lambda: tracker.metric_history(long_run, LONG_METRIC, max_points=1000),
                "history",
            ),
            (
                f"{h}, one page of 1,000 (middle)",
                lambda: tracker.metric_history(long_run, LONG_METRIC, after_step=long_points // 2, limit=1000),
                "page",
            ),
        ]
        if not args.no_whole_history:
            questions.append((f"{h}, whole", lambda: tracker.metric_history(long_run, LONG_METRIC), "history_all"))
    mt: dict[str, dict[str, Any]] = {}
    load = os.getloadavg()[0]
    step(f"timing modeltrail, median of {args.repeat} (load average {load:.1f} on {os.cpu_count()} CPUs)")
    for title, fn, key in questions:
        mt[key] = timed(fn, 1, warmups=1) if key == "history_all" else timed(fn, args.repeat)
        print(f"  {title:<38} {mt[key]['median']:8.2f} ms")
    assert len(mt["lb"]["result"]) == args.versions
    serving = mt["prod"]["result"]
    if long_points:
        curve_points = mt["history"]["result"]
        spike = max(p.value for p in curve_points)
        assert len(curve_points) <= 1000 and spike > 5.0, "the downsampled curve lost the spike"
        assert args.no_whole_history or len(mt["history_all"]["result"]) == long_points

    plans_ok = explain(engine, f"leaderboard top {top} (best-ever value)", questions[0][1])
    plans_ok &= explain(engine, f"leaderboard top {top} (last value)", questions[1][1])
    plans_ok &= explain(engine, "leaderboard (best-ever value, all versions)", questions[2][1])
    plans_ok &= explain(engine, f"compare v{a} with v{b}", questions[4][1])
    plans_ok &= explain(engine, "what is in production", questions[5][1])
    plans_ok &= explain(engine, "what was in production at T", questions[6][1])
    if long_points:
        plans_ok &= explain(engine, "downsampled history", questions[9][1])
    # Not held to the rule: a search looks at each of the model's trainings (by the model's index);
    # each param and metric condition is one unique-index lookup per training.
    explain(engine, "search trainings", questions[8][1])
    tracker.close()

    ml: dict[str, dict[str, Any]] = {}
    if not args.no_mlflow:
        from mlflow import MlflowClient

        reuse_mlflow = args.reuse and count(MLFLOW_DB, "SELECT COUNT(*) FROM {db}.model_versions") == args.versions
        if reuse_mlflow:
            step(f"reusing MLflow store {MLFLOW_DB}")
        else:
            how = "points in bulk" if bulk else "log_batch"
            step(f"loading the same data into MLflow ({MLFLOW_DB}) with {args.mlflow_workers} threads, {how}")
            resume = args.reuse and count(MLFLOW_DB, "SELECT COUNT(*) FROM {db}.model_versions") == 0
            if resume and count(MLFLOW_DB, "SELECT COUNT(*) FROM {db}.runs") > 0:
                step("  resuming an interrupted load: its points are loaded afresh, unfinished runs deleted")
                mysql_admin(f"DELETE FROM `{MLFLOW_DB}`.metrics")
                mysql_admin(f"DELETE FROM `{MLFLOW_DB}`.latest_metrics")
                mysql_admin(f"UPDATE `{MLFLOW_DB}`.runs SET lifecycle_stage = 'deleted' WHERE status <> 'FINISHED'")
            else:
                fresh_mysql_database(MLFLOW_DB)
            loaded = build_mlflow(mlflow_url, steps, plan, args.mlflow_workers, artifacts, seeds, bulk=bulk)
            step(f"  done in {loaded['seconds']:.0f}s")
            if long_points:
                how = "in bulk" if bulk else f"log_batch of {MLFLOW_BATCH}"
                step(f"loading the {long_points:,}-point history into MLflow ({how})")
                loaded = build_mlflow_history(mlflow_url, long_points, bulk=bulk)
                step(f"  done in {loaded['seconds']:.0f}s")
        client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
        experiment = client.get_experiment_by_name(MODEL).experiment_id
        run_of = {int(mv.version): mv.run_id for mv in client.search_model_versions(f"name='{MODEL}'")}
        order = ["metrics.val_auc DESC"]
        ml_questions: list[tuple[str, Callable[[], Any]]] = [
            ("lb10_last", lambda: client.search_runs([experiment], order_by=order, max_results=top)),
            ("lb_last", lambda: client.search_runs([experiment], order_by=order, max_results=args.versions)),
            ("compare", lambda: (client.get_run(run_of[a]), client.get_run(run_of[b]))),
            ("prod", lambda: client.get_model_version_by_alias(MODEL, "production")),
            ("versions", lambda: client.search_model_versions(f"name='{MODEL}'", max_results=args.versions)),
            ("search", lambda: client.search_runs([experiment], filter_string=SEARCH, order_by=order, max_results=20)),
        ]
        long_runs = client.search_runs([client.get_experiment_by_name(LONG_MODEL).experiment_id]) if long_points else []
        if long_runs and not args.no_whole_history:
            long_id = long_runs[0].info.run_id
            ml_questions.append(("history_all", lambda: client.get_metric_history(long_id, LONG_METRIC)))
        step(f"timing MLflow, median of {args.repeat} (load average {os.getloadavg()[0]:.1f})")
        for key, fn in ml_questions:
            ml[key] = timed(fn, 1, warmups=1) if key == "history_all" else timed(fn, args.repeat)
            print(f"  {key:<38} {ml[key]['median']:8.2f} ms")
        their_top = ml["lb10_last"]["result"][0].info.run_id
        assert their_top == run_of[mt["lb10_last"]["result"][0].version], "MLflow and modeltrail disagree on the top"
        assert int(ml["prod"]["result"].version) == serving.version, "MLflow and modeltrail disagree on production"
        theirs = {r.info.run_id for r in ml["search"]["result"]}
        ours = {run_of[t.version] for t in mt["search"]["result"]}
        assert theirs == ours, f"MLflow and modeltrail find different runs: {len(theirs)} against {len(ours)}"
        if not args.keep:
            drop_mysql_database(MLFLOW_DB)
    if not args.keep:
        drop_mysql_database(LEDGER_DB)

    calls = {
        "lb10": "-- (MLflow ranks by the last value only)",
        "lb10_last": f"search_runs(order_by=['metrics.val_auc DESC'], max_results={top})",
        "lb": "--",
        "lb_last": f"search_runs(order_by=['metrics.val_auc DESC'], max_results={args.versions})",
        "compare": "get_run x 2, diffed by the caller",
        "prod": "get_model_version_by_alias('production')",
        "asof": "-- (aliases keep no history)",
        "versions": f"search_model_versions(name=..., max_results={args.versions})",
        "search": "search_runs(filter_string=..., order_by=val_auc DESC, max_results=20)",
        "history": "-- (get_metric_history returns every point)",
        "page": "-- (no paging by step)",
        "history_all": "get_metric_history(run_id, key)",
    }
    targets = {"lb10", "lb10_last", "lb", "lb_last", "compare", "prod"}
    # A whole leaderboard returns every version (its client decodes them all): 50 ms per 1,000.
    whole = TARGET_MS * max(1.0, args.versions / 1000)
    limits = {key: TARGET_MS for key in targets} | {"lb": whole, "lb_last": whole, "history": HISTORY_TARGET_MS}
    print(f"\n{n} versions of one model, {points:,} metric points (+ one {long_points:,}-point history), "
          f"MariaDB {server_version()}, "
          f"median of {args.repeat} calls (client CPU ms in brackets)")  # fmt: skip
    print(f"{'question':<40}{'modeltrail ms':>20}{'MLflow ms':>12}   MLflow call")
    missed = []
    for title, _, key in questions:
        mine = f"{mt[key]['median']:.2f} ({mt[key]['cpu']:.1f})"
        theirs = f"{ml[key]['median']:12.2f}" if key in ml else f"{'-':>12}"
        mark = ""
        if key in limits:
            ok = mt[key]["median"] < limits[key]
            mark = f"   < {limits[key]:.0f} ms: " + ("ok" if ok else "MISSED")
            if not ok:
                missed.append(title)
        print(f"{title:<40}{mine:>20}{theirs}   {calls[key]}{mark}")
    print(f"\nin production now: version {serving.version}; no plan reads a big table whole: {plans_ok}")
    if built:
        print(f"ledger built through Tracker.training / log_metric / finish (not bulk SQL) by {args.workers} "
              f"processes in {built['seconds']:.0f}s ({points / built['seconds']:,.0f} points/s)")  # fmt: skip
    if ml:
        print("MLflow's points loaded by " + ("executemany into its metrics tables" if bulk else "log_batch"))
    if args.save:
        scale = {"versions": args.versions, "points": points, "load": load, "mlflow_bulk": bulk}
        rows = {key: {"title": title, "modeltrail": mt[key]["median"], "cpu": mt[key]["cpu"],
                      "mlflow": ml[key]["median"] if key in ml else None} for title, _, key in questions}  # fmt: skip
        with open(args.save, "w") as f:
            json.dump({"scale": scale, "questions": rows}, f, indent=1)
    return 1 if missed or not plans_ok else 0


#: Questions answered by index lookups and range scans: the same cost whatever the ledger's size.
#: The others read every version (a whole leaderboard, all versions) or examine each (a search).
INDEX_BACKED = ("lb10", "lb10_last", "compare", "prod", "asof", "history", "page")
#: Slower than this ratio at the larger scale counts as growing; below it is this machine's noise.
NOISE = 1.5


def table(small_file: str, large_file: str) -> int:
    """Two ``--save`` results side by side; exit 1 when an index-backed question grew beyond noise."""
    runs = []
    for name in (small_file, large_file):
        with open(name) as f:
            runs.append(json.load(f))
    small, large = runs
    scales = [f"{r['scale']['versions']:,} v, {r['scale']['points'] / 1e6:g}M pts" for r in runs]
    print(f"{'question':<42}{scales[0]:>20}{scales[1]:>20}{'ratio':>7}{'MLflow':>12}{'MLflow':>12}")
    grew = []
    for key, row in small["questions"].items():
        other = large["questions"].get(key)
        if other is None:
            continue
        ratio = other["modeltrail"] / row["modeltrail"]
        flag = ""
        if key in INDEX_BACKED:
            flag = "  same" if ratio < NOISE else "  GREW"
            if ratio >= NOISE:
                grew.append(TITLES[key])
        theirs = "".join(f"{x['mlflow']:>9.1f} ms" if x["mlflow"] is not None else f"{'-':>12}" for x in (row, other))
        print(
            f"{TITLES[key]:<42}{row['modeltrail']:>17.1f} ms{other['modeltrail']:>17.1f} ms{ratio:>7.2f}{theirs}{flag}"
        )
    loads = " and ".join(f"{r['scale']['load']:.1f}" for r in runs)
    print(f"load average while timing: {loads}; index-backed questions slower by x{NOISE} or more: "
          f"{', '.join(grew) or 'none'}")  # fmt: skip
    return 1 if grew else 0


def interleave(small: str, large: str, *, repeat: int) -> int:
    """The index-backed questions on two kept ledgers from one process, their calls alternating.

    Two runs minutes apart differ by more than the ledgers do on a shared machine (the same
    question on identical rows moved by x1.3 between runs here); alternating calls share every
    moment's load, so the ratio compares the ledgers alone. Exit 1 when one grew by ``NOISE``.
    """
    import modeltrail

    def questions(suffix: str) -> tuple[Any, dict[str, Callable[[], Any]]]:
        tracker = modeltrail.Tracker(mysql_url("mt_bench_queries" + suffix))
        versions = len(tracker.versions(MODEL))
        timeline = tracker.deployments(MODEL, environment="production")
        middle = timeline[len(timeline) // 2].deployed_at + dt.timedelta(milliseconds=1)
        long_run = tracker.trainings(LONG_MODEL)[0].id
        return tracker, {
            "lb10": lambda: tracker.leaderboard(MODEL, "val_auc", limit=10),
            "lb10_last": lambda: tracker.leaderboard(MODEL, "val_auc", by="last", limit=10),
            "compare": lambda: tracker.compare(MODEL, versions // 2, versions),
            "prod": lambda: tracker.deployment(MODEL, "production"),
            "asof": lambda: tracker.deployment(MODEL, "production", at=middle),
            "history": lambda: tracker.metric_history(long_run, LONG_METRIC, max_points=1000),
            "page": lambda: tracker.metric_history(long_run, LONG_METRIC, after_step=500_000, limit=1000),
        }

    (a, qa), (b, qb) = questions(small), questions(large)
    sizes = [f"{len(t.versions(MODEL)):,} versions" for t in (a, b)]
    print(f"calls alternating, median of {repeat} each (load average {os.getloadavg()[0]:.1f})")
    print(f"{'question':<42}{sizes[0]:>16}{sizes[1]:>18}{'ratio':>7}")
    grew = []
    for key in INDEX_BACKED:
        for fn in (qa[key], qb[key], qa[key], qb[key]):
            fn()  # warm both
        times: tuple[list[float], list[float]] = ([], [])
        for _ in range(repeat):
            for i, fn in enumerate((qa[key], qb[key])):
                t0 = time.perf_counter()
                fn()
                times[i].append((time.perf_counter() - t0) * 1000)
        ms = [statistics.median(t) for t in times]
        ratio = ms[1] / ms[0]
        if ratio >= NOISE:
            grew.append(TITLES[key])
        print(f"{TITLES[key]:<42}{ms[0]:>13.2f} ms{ms[1]:>15.2f} ms{ratio:>7.2f}")
    print(f"index-backed questions slower by x{NOISE} or more: {', '.join(grew) or 'none'}")
    a.close()
    b.close()
    return 1 if grew else 0


#: Row titles of ``--table``, the same at every scale.
TITLES = {
    "lb10": "leaderboard top 10, best-ever value",
    "lb10_last": "leaderboard top 10, last value",
    "lb": "leaderboard of all versions, best-ever",
    "lb_last": "leaderboard of all versions, last value",
    "compare": "compare two versions",
    "prod": "what is in production",
    "asof": "what was in production at T",
    "versions": "all versions of the model",
    "search": "search: params and metric, best 20",
    "history": "long history, downsampled to 1,000",
    "page": "long history, one page of 1,000",
    "history_all": "long history, whole",
}


def server_version() -> str:
    return str(mysql_admin("SELECT VERSION()")[0][0]).split("-")[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
