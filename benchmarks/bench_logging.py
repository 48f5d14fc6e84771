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

Every measurement runs in its own child process, ``_logging_workloads.py`` (clean memory
figures, no threads left over from a previous one). Run it with the benchmark venv (``make bench``)::

    .venv-bench/bin/python benchmarks/bench_logging.py            # the full run
    .venv-bench/bin/python benchmarks/bench_logging.py --quick    # about a minute
    .venv-bench/bin/python benchmarks/bench_logging.py --backends sqlite --points 200000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from _common import CHILD_ENV, Databases, fill_defaults, parse_backends, print_columns, run_child, step

#: Modules ``import modeltrail`` must not pull in.
FORBIDDEN = ("torch", "sklearn", "keras", "lightning", "pytorch_lightning", "tensorflow", "jax", "numpy")
TARGETS = {
    "import": 150.0,  # ms, at most
    "call": 5.0,  # µs/call median, at most
    "ingest_sqlite": 200_000.0,  # points/s, at least
    "ingest_mysql": 80_000.0,
}


# ============================================================= parent side
#: The child side: one measurement per run (``python _logging_workloads.py TASK KWARGS_JSON``).
WORKLOADS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_logging_workloads.py")


def run_task(task: str, **kwargs: Any) -> dict[str, Any]:
    """One ``child_*`` function of ``_logging_workloads.py`` in a fresh interpreter."""
    return run_child([WORKLOADS, task, json.dumps(kwargs)], what=f"benchmark step {task}")


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
    cells = [(r.measure, r.backend, r.modeltrail, r.mlflow, r.reference, r.target, marks[r.ok]) for r in rows]
    print_columns(head, cells, ["<", "<", ">", ">", ">", "<", "<"])


def measure_backend(backend: str, args: argparse.Namespace, dbs: Databases, artifacts: str) -> dict[str, Any]:
    """Every figure of one backend, each from its own child process and its own fresh database."""
    res: dict[str, Any] = {}
    step(f"{backend}: modeltrail log_metric x {args.calls:,}")
    res["mt_calls"] = run_task("mt_calls", url=dbs.url(backend, "mt_bench_calls"), n=args.calls)
    step(f"{backend}: modeltrail ingest of {args.points:,} points")
    res["mt_ingest"] = run_task("mt_ingest", url=dbs.url(backend, "mt_bench_ingest"), n=args.points)
    if backend == "mysql":
        # Large batches by LOAD DATA LOCAL INFILE: opted into with the driver's flag in the URL.
        step(f"{backend}: modeltrail ingest of {args.points:,} points, local_infile=1")
        url = dbs.url(backend, "mt_bench_infile")
        res["mt_ingest_infile"] = run_task("mt_ingest", url=url + ("&" if "?" in url else "?") + "local_infile=1",
                                           n=args.points)  # fmt: skip
    if args.tracemalloc:
        step(f"{backend}: modeltrail ingest under tracemalloc")
        res["mt_ingest_traced"] = run_task(
            "mt_ingest", url=dbs.url(backend, "mt_bench_traced"), n=args.points, use_tracemalloc=True
        )
    step(f"{backend}: raw driver executemany of {args.points:,} points")
    res["raw"] = run_task("raw_ingest", url=dbs.url(backend, "mt_bench_raw"), n=args.points, backend=backend)
    if not args.no_mlflow:
        url = dbs.url(backend, "mlflow_bench")
        step(f"{backend}: MLflow log_metric x {args.mlflow_sync} sync, x {args.mlflow_async} async")
        res["mlflow_calls"] = run_task(
            "mlflow_calls", url=url, n_sync=args.mlflow_sync, n_async=args.mlflow_async, artifacts=artifacts
        )
        step(f"{backend}: MLflow log_batch of {args.mlflow_points:,} points")
        res["mlflow_batch"] = run_task("mlflow_batch", url=url, n=args.mlflow_points, artifacts=artifacts)
    return res


def backend_rows(backend: str, res: dict[str, Any]) -> list[Row]:
    """The table's rows for one backend's figures."""
    rows: list[Row] = []
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
            f"ingest {ingest['points']:,} pts (points/s)",
            backend,
            _rate(ingest["rate"]),
            f"{_rate(mb['rate'])} log_batch" if mb else "-",
            f"{_rate(raw['rate'])} raw",
            target=f">= {target:,.0f}",
            ok=ingest["rate"] >= target,
        )
    )
    infile = res.get("mt_ingest_infile")
    if infile:
        stored_ok = stored_ok and infile["stored"] == infile["expected"]
        rows.append(
            Row(
                "  the same with ?local_infile=1 (points/s)",
                backend,
                _rate(infile["rate"]),
                reference=f"{_rate(raw['rate'])} raw",
                target=f">= {target:,.0f}",
                ok=infile["rate"] >= target,
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
    return rows


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
    fill_defaults(
        args,
        (
            ("points", 1_000_000, 100_000),
            ("calls", 100_000, 20_000),
            ("mlflow_sync", 300, 50),
            ("mlflow_async", 2_000, 300),
            ("mlflow_points", 50_000, 5_000),
            ("import_runs", 7, 3),
        ),
    )
    args.backends = parse_backends(p, args.backends)
    return args


def main(argv: list[str]) -> int:
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

    workdir = tempfile.mkdtemp(prefix="modeltrail-bench-")
    dbs = Databases(workdir, tag=f"{os.getpid()}")
    try:
        for backend in args.backends:
            results[backend] = measure_backend(backend, args, dbs, os.path.join(workdir, "mlflow-artifacts"))
            rows += backend_rows(backend, results[backend])
    finally:
        if not args.keep:
            dbs.drop()
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept: {workdir} and databases {dbs.made}", file=sys.stderr)

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
