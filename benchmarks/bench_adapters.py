#!/usr/bin/env python3
"""Adapter overhead: the same Lightning fit and the same Keras fit with no logger, with modeltrail, with MLflow.

Each run is a fresh child process (a fresh interpreter: imports done before the clock starts, but every
first-use cost of the logger inside it: opening the store, checking its schema, starting the run, and at the
end finishing it and flushing every queued point). The timed region is::

    build the logger/callback -> (Trainer) -> fit -> (flush MLflow's async queue / end its run)

Variants (what each one writes is in the legend the benchmark prints):

* Lightning (``self.log("train_loss", loss)`` every step, ``log_every_n_steps=1``): ``none`` (``logger=False``),
  ``null`` (a Logger whose hooks do nothing: Lightning's own cost of having any logger), ``modeltrail``
  (``ModeltrailLogger``), ``mlflow`` (``MLFlowLogger``, its default synchronous ``log_batch`` per step),
  ``mlflow-async`` (``MLFlowLogger(synchronous=False)``).
* Keras (torch backend): ``none``; ``null`` (a callback with an empty ``on_train_batch_end``: what Keras itself
  pays once any callback wants every batch); ``modeltrail`` (``ModeltrailCallback``, per-epoch metrics; it has no
  per-step option) against ``mlflow`` (``MlflowCallback(log_every_epoch=True)``); ``modeltrail-step`` (the
  callback plus 6 lines of per-batch logging through the core ``Training.log_metric``, in
  ``_adapter_workloads.py``) against ``mlflow-step`` (``MlflowCallback(log_every_epoch=False, log_every_n_steps=1)``).

Variants run interleaved (the order rotates each repeat) so that drift in the machine's load hits all alike.
Besides the wall time of each fit it records, from inside the child: the time spent in the logger's hooks on
the training thread, the CPU time of the logger's background threads, and that every point reached the store.

    .venv-bench/bin/python benchmarks/bench_adapters.py                     # both frameworks, SQLite + MariaDB
    .venv-bench/bin/python benchmarks/bench_adapters.py --quick             # a few minutes
    .venv-bench/bin/python benchmarks/bench_adapters.py --backends sqlite --frameworks lightning --repeats 5
    .venv-bench/bin/python benchmarks/bench_adapters.py --profile lightning:modeltrail:sqlite
    .venv-bench/bin/python benchmarks/bench_adapters.py --frameworks system --backends sqlite   # sampler cost

More frameworks plug in as ``_adapter_workloads_<name>.py`` modules (their variants and their child side; see
``_adapter_workloads.py``): they are found by name and run with the others, in the same table; the system-metric
sampler's case (``system``: under 1% added to a fit) is one of them.

Needs torch (CPU), lightning and keras in the benchmark venv: see ``requirements-adapters.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from _adapter_workloads import workload_modules
from _common import Databases, comma_list, fill_defaults, parse_backends, print_columns, run_child, step

TARGET_OVERHEAD = 2.0  # % of the no-logger fit time, at most
#: The child side: one fit per run, timed from inside (``python _adapter_workloads.py SPEC_JSON``).
WORKLOADS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_adapter_workloads.py")
#: On top of ``_common.CHILD_ENV``: Keras on torch, and no complaint from MLflow that git is missing.
CHILD_ENV = {"KERAS_BACKEND": "torch", "GIT_PYTHON_REFRESH": "quiet"}


@dataclass(frozen=True)
class Variant:
    framework: str
    name: str
    backend: str  # "-" when no store is involved
    logs: str  # what it writes, for the legend
    compare_to: str | None = None  # the MLflow variant modeltrail must beat
    shipped: bool = True  # False: an illustration, not a shipped adapter option
    target: float = TARGET_OVERHEAD  # % of the no-logger fit time, at most

    @property
    def key(self) -> str:
        return f"{self.framework}:{self.name}:{self.backend}"

    @property
    def stores(self) -> str | None:
        if self.name.startswith("modeltrail"):
            return "modeltrail"
        if self.name.startswith("mlflow"):
            return "mlflow"
        return None


def variants(frameworks: list[str], backends: list[str], mlflow_async: bool) -> list[Variant]:
    out: list[Variant] = []
    if "lightning" in frameworks:
        out += [
            Variant("lightning", "none", "-", "logger=False: nothing (self.log still feeds callback_metrics)"),
            Variant("lightning", "null", "-", "a Logger with empty hooks: Lightning's own per-step logging work"),
        ]
        for b in backends:
            out.append(
                Variant(
                    "lightning",
                    "modeltrail",
                    b,
                    "ModeltrailLogger: 2 hparams + 11 trainer.* params; train_loss and epoch every step "
                    "(queued; modeltrail's writer thread writes them in batches); finish -> version",
                    compare_to="mlflow",
                )
            )
            out.append(
                Variant(
                    "lightning",
                    "mlflow",
                    b,
                    "MLFlowLogger (default, synchronous): 2 hparams; train_loss and epoch every step, one "
                    "log_batch transaction per step; set_terminated",
                )
            )
            if mlflow_async:
                out.append(
                    Variant(
                        "lightning",
                        "mlflow-async",
                        b,
                        "MLFlowLogger(synchronous=False): the same, queued to MLflow's async logging thread; "
                        "flush_async_logging() in the timed region",
                    )
                )
    if "keras" in frameworks:
        out += [
            Variant("keras", "none", "-", "no callback"),
            Variant("keras", "null", "-", "a callback with an empty on_train_batch_end: Keras' own per-step hook cost"),
        ]
        for b in backends:
            out += [
                Variant(
                    "keras",
                    "modeltrail",
                    b,
                    "ModeltrailCallback (defaults): fit, model and optimizer params, dataset fingerprint of x/y; "
                    "loss, accuracy, lr per epoch; model saved as .keras artifact; finish -> version",
                    compare_to="mlflow",
                ),
                Variant(
                    "keras",
                    "mlflow",
                    b,
                    "MlflowCallback(log_every_epoch=True) in start_run(): optimizer params, model summary "
                    "text artifact; loss, accuracy per epoch (async); flush + end_run",
                ),
                Variant(
                    "keras",
                    "modeltrail-step",
                    b,
                    "ModeltrailCallback + per-batch log_metric of batch_loss, batch_accuracy (a bench subclass: "
                    "the callback has no per-step option)",
                    compare_to="mlflow-step",
                    shipped=False,
                ),
                Variant(
                    "keras",
                    "mlflow-step",
                    b,
                    "MlflowCallback(log_every_epoch=False, log_every_n_steps=1): params, summary; loss, "
                    "accuracy every batch (async); flush + end_run",
                ),
            ]
    for framework, module in PLUGINS.items():
        if framework in frameworks:
            out += [Variant(framework, **fields) for fields in module.variants(framework, backends)]
    return out


#: Workloads plugged in beside this file (``_adapter_workloads_<name>.py``), by framework.
PLUGINS = workload_modules()
FRAMEWORKS = ("lightning", "keras", *PLUGINS)


# ================================================================= stores
@dataclass
class Stores(Databases):
    """One modeltrail and one MLflow database per backend, made fresh and dropped at the end."""

    urls: dict[tuple[str, str], str] = field(default_factory=dict)

    def make(self, backend: str) -> None:
        for store, prefix in (("modeltrail", "mt_benchad"), ("mlflow", "mlflow_benchad")):
            self.urls[(backend, store)] = self.url(backend, prefix)


def run_workload(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One measurement (or the stores' setup) in a fresh interpreter: see ``_adapter_workloads.py``."""
    what = f"child {spec.get('kind')} {spec.get('variant', '')}"
    return run_child([WORKLOADS, json.dumps(spec)], what=what, env=CHILD_ENV, timeout=timeout)


# ================================================================= report
@dataclass
class Stat:
    variant: Variant
    runs: list[dict[str, Any]] = field(default_factory=list)

    def times(self) -> list[float]:
        return [r["fit_s"] for r in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.times())

    def mean_of(self, key: str) -> float:
        return statistics.fmean(r[key] for r in self.runs)

    @property
    def points_ok(self) -> bool | None:
        flags = [r.get("points_ok") for r in self.runs if "points_ok" in r]
        return all(flags) if flags else None


def spec_for(v: Variant, args: argparse.Namespace, stores: Stores, workdir: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "kind": "run",
        "framework": v.framework,
        "variant": v.name,
        "backend": v.backend,
        "samples": args.samples,
        "batch": args.batch_size,
        "epochs": args.lightning_epochs if v.framework == "lightning" else args.keras_epochs,
        "threads": args.threads,
        "seed": 1234,
        "workdir": workdir,
    }
    if v.stores is not None:
        spec["uri"] = stores.urls[(v.backend, v.stores)]
    return spec


def print_table(stats: list[Stat], baseline: dict[str, float], null: dict[str, float]) -> list[str]:
    head = ("framework", "backend", "variant", "median s", "min s", "max s", "vs none", "min/min", "vs null", "hook ms",
            "µs/step", "bg CPU s", "points", "target")  # fmt: skip
    rows: list[tuple[str, ...]] = []
    verdicts: list[str] = []
    by_key = {s.variant.key: s for s in stats}
    base_min = {f: min(by_key[f"{f}:none:-"].times()) for f in baseline}
    for s in stats:
        v = s.variant
        base = baseline[v.framework]
        over = (s.median / base - 1) * 100
        none = by_key[f"{v.framework}:none:-"]
        if all("overhead_pct" in r for r in [*s.runs, *none.runs]):  # the workload measures its cost (CPU share)
            over = statistics.fmean(r["overhead_pct"] for r in s.runs) - statistics.fmean(
                r["overhead_pct"] for r in none.runs
            )
        per_step = s.mean_of("step_hook_s") / max(1, s.runs[0]["step_hook_calls"]) * 1e6
        target = ""
        if v.name.startswith("modeltrail"):
            rival = by_key.get(f"{v.framework}:{v.compare_to}:{v.backend}")
            ok_over = over < v.target
            target = f"{'PASS' if ok_over else 'FAIL'} <{v.target:g}% (x{1 + over / 100:.4f})"
            if rival is not None:
                faster = s.median < rival.median
                target += f", {'PASS' if faster else 'FAIL'} < {v.compare_to}"
                if not faster:
                    ok_over = False
            for name in ("mlflow-async",) if v.framework == "lightning" else ():
                other = by_key.get(f"{v.framework}:{name}:{v.backend}")
                if other is not None:
                    target += f" ({'<' if s.median < other.median else '>'} {name})"
            if not v.shipped:
                target += " [not shipped]"
            verdicts.append(f"{v.key}: {target}")
        points = {True: "ok", False: "MISSING", None: "-"}[s.points_ok]
        hook = s.mean_of("hook_s") * 1e3 if s.runs[0]["hooks"] else 0.0
        rows.append(
            (
                v.framework,
                v.backend,
                v.name,
                f"{s.median:.2f}",
                f"{min(s.times()):.2f}",
                f"{max(s.times()):.2f}",
                "-" if v.name == "none" else f"{over:+.1f}%",
                "-" if v.name == "none" else f"{(min(s.times()) / base_min[v.framework] - 1) * 100:+.1f}%",
                "-"
                if v.name in ("none", "null") or v.framework not in null
                else f"{(s.median / null[v.framework] - 1) * 100:+.1f}%",
                f"{hook:,.0f}" if s.runs[0]["hooks"] else "-",
                f"{per_step:,.1f}" if s.runs[0]["step_hook_calls"] else "-",
                f"{s.mean_of('bg_cpu_s'):.2f}",
                points,
                target,
            )
        )
    align = ["<", "<", "<", ">", ">", ">", ">", ">", ">", ">", ">", ">", "<", "<"]
    print_columns(head, rows, align, gap_between_groups=True)
    return verdicts


def profile_one(target: str, args: argparse.Namespace, stores: Stores, workdir: str) -> None:
    framework, name, backend = [*target.split(":"), "sqlite", "sqlite"][:3]
    v = next(
        (x for x in variants([framework], [backend], True) if x.name == name and x.backend in (backend, "-")), None
    )
    if v is None:
        raise SystemExit(f"--profile: no variant {target!r}")
    spec = spec_for(v, args, stores, workdir) | {"profile": True}
    res = run_workload(spec, timeout=args.timeout)
    print(f"\n=== cProfile of the timed region of {v.key} (training thread only; fit {res['fit_s']:.2f} s) ===")
    print(res["profile"])
    print(f"hooks (s, calls): {res['hooks']}; background threads: {res['bg_threads']}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller fits and 2 repeats: a few minutes")
    p.add_argument("--backends", default="sqlite,mysql", help="comma-separated: sqlite, mysql (default both)")
    p.add_argument(
        "--frameworks", default=",".join(FRAMEWORKS), help=f"comma-separated: {', '.join(FRAMEWORKS)} (default all)"
    )
    p.add_argument("--repeats", type=int, help="runs of each variant, interleaved (default 3; quick 2)")
    p.add_argument("--samples", type=int, help="synthetic samples (default 20,000; quick 10,000)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lightning-epochs", type=int, help="default 12 (3,756 steps); quick 3")
    p.add_argument("--keras-epochs", type=int, help="default 10 (3,130 steps); quick 3")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads in the children (default 1: the fastest and steadiest for this small model "
        "on a shared 2-core machine, and it leaves a core to background writer threads; 0: torch's default)",
    )
    p.add_argument("--no-mlflow-async", action="store_true", help="skip MLFlowLogger(synchronous=False)")
    p.add_argument(
        "--variants",
        help="comma-separated variant names to run (none and null always run): modeltrail, mlflow, mlflow-async, "
        "modeltrail-step, mlflow-step",
    )
    p.add_argument("--profile", metavar="FW:VARIANT[:BACKEND]", help="cProfile one run instead, e.g. keras:modeltrail")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per child run")
    p.add_argument("--json", metavar="PATH", help="also write every run's figures as JSON to PATH")
    args = p.parse_args(argv)
    fill_defaults(
        args, (("repeats", 3, 2), ("samples", 20_000, 10_000), ("lightning_epochs", 12, 3), ("keras_epochs", 10, 3))
    )
    args.backends = parse_backends(p, args.backends)
    args.frameworks = comma_list(args.frameworks)
    args.variants = set(comma_list(args.variants)) | {"none", "null"} if args.variants else None
    for f in args.frameworks:
        if f not in FRAMEWORKS:
            p.error(f"unknown framework {f!r} (known: {', '.join(FRAMEWORKS)})")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="modeltrail-benchad-")
    stores = Stores(workdir, tag=str(os.getpid()))
    backends = list(args.backends)
    if args.profile:
        parts = args.profile.split(":")
        backends = [parts[2]] if len(parts) > 2 else ["sqlite"]
    try:
        for backend in backends:
            step(f"{backend}: fresh modeltrail and MLflow databases (schemas made before any timed run)")
            stores.make(backend)
            run_workload(
                {
                    "kind": "setup",
                    "workdir": workdir,
                    "mt_uri": stores.urls[(backend, "modeltrail")],
                    "mlflow_uri": stores.urls[(backend, "mlflow")],
                },
                timeout=args.timeout,
            )
        if args.profile:
            profile_one(args.profile, args, stores, workdir)
            return 0

        plan = [
            v
            for v in variants(args.frameworks, backends, not args.no_mlflow_async)
            if args.variants is None or v.name in args.variants
        ]
        stats = {v.key: Stat(v) for v in plan}
        load0 = os.getloadavg()
        started = time.perf_counter()
        for framework in args.frameworks:
            group = [v for v in plan if v.framework == framework]
            for r in range(args.repeats):
                shift = r * max(1, len(group) // args.repeats) % len(group)
                order = group[shift:] + group[:shift]
                for v in order:
                    res = run_workload(spec_for(v, args, stores, workdir), timeout=args.timeout)
                    stats[v.key].runs.append(res)
                    step(
                        f"{framework} repeat {r + 1}/{args.repeats}: {v.name:<15} {v.backend:<6} "
                        f"fit {res['fit_s']:6.2f} s  hooks {res['hook_s'] * 1e3:7.0f} ms  "
                        f"bg CPU {res['bg_cpu_s']:.2f} s  points {res.get('points', '-')}"
                        + (f"  {res['note']}" if res.get("note") else "")
                    )
                    for w in res["warnings"]:
                        step(f"  warning: {w}")
        elapsed = time.perf_counter() - started
        load1 = os.getloadavg()

        baseline = {f: stats[f"{f}:none:-"].median for f in args.frameworks}
        steps_of = {f: next(s for s in stats.values() if s.variant.framework == f).runs[0]["steps"] for f in baseline}
        print()
        print(
            f"Adapter overhead: {args.samples:,} samples, batch {args.batch_size}, Lightning {args.lightning_epochs} "
            f"epochs / Keras {args.keras_epochs} epochs ({', '.join(f'{f} {n:,} steps' for f, n in steps_of.items())}"
            f"); {args.repeats} interleaved runs per variant, each a fresh process; {os.cpu_count()} CPUs, "
            f"torch threads {args.threads or 'default'}; load average {load0[0]:.1f} -> {load1[0]:.1f}; "
            f"{elapsed / 60:.1f} min"
        )
        print()
        null = {f: stats[f"{f}:null:-"].median for f in args.frameworks if f"{f}:null:-" in stats}
        verdicts = print_table(list(stats.values()), baseline, null)
        print()
        print("median s / min s / max s: wall time of the timed region (logger built + fit + final flush);")
        print("vs none: median against the no-logger median (the target); min/min: fastest run against the")
        print("fastest no-logger run (less sensitive to other load on the machine); vs null: median against")
        print("the do-nothing logger/callback, i.e. without the framework's own cost of feeding any logger;")
        print("hook ms: time in the logger's hooks on the training thread (start, every step, finish), mean;")
        print("µs/step: per-step hook (log_metrics / batch end) mean; bg CPU s: CPU time of every thread but")
        print("the training thread in the timed region, mean (process CPU - training-thread CPU, so threads that")
        print("ended count too: MLflow's async workers, Keras' batch-hook executor); points: every logged point")
        print("found in the store afterwards.")
        print()
        for framework, name, logs in dict.fromkeys((v.framework, v.name, v.logs) for v in plan):
            print(f"  {framework:<9} {name:<15} {logs}")
        print()
        for f, base in baseline.items():
            times = stats[f"{f}:none:-"].times()
            spread = (max(times) - min(times)) / base * 100
            print(f"noise: {f} no-logger runs spread {spread:.1f}% of their median (min..max)")
        for line in verdicts:
            print(f"target {line}")
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(
                    {"args": vars(args), "runs": {k: s.runs for k, s in stats.items()}, "baseline": baseline},
                    fh,
                    indent=1,
                    default=str,
                )
        ours = [v for v in plan if v.name.startswith("modeltrail")]
        shipped_fail = any("FAIL" in line for line, v in zip(verdicts, ours, strict=True) if v.shipped)
        missing = any(s.points_ok is False for s in stats.values())
        return 1 if shipped_fail or missing else 0
    finally:
        stores.drop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
