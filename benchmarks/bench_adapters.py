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
  callback plus the 6-line per-batch logging below, through the core ``Training.log_metric``) against
  ``mlflow-step`` (``MlflowCallback(log_every_epoch=False, log_every_n_steps=1)``).

Variants run interleaved (the order rotates each repeat) so that drift in the machine's load hits all alike.
Besides the wall time of each fit it records, from inside the child: the time spent in the logger's hooks on
the training thread, the CPU time of the logger's background threads, and that every point reached the store.

    .venv-bench/bin/python benchmarks/bench_adapters.py                     # both frameworks, SQLite + MariaDB
    .venv-bench/bin/python benchmarks/bench_adapters.py --quick             # a few minutes
    .venv-bench/bin/python benchmarks/bench_adapters.py --backends sqlite --frameworks lightning --repeats 5
    .venv-bench/bin/python benchmarks/bench_adapters.py --profile lightning:modeltrail:sqlite

Needs torch (CPU), lightning and keras in the benchmark venv: see ``requirements-adapters.txt``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import io
import json
import math
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

MYSQL_HOST = os.environ.get("BENCH_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("BENCH_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("BENCH_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("BENCH_MYSQL_PASSWORD", "")

TARGET_OVERHEAD = 2.0  # % of the no-logger fit time, at most
FEATURES, CLASSES, HIDDEN = 32, 10, 256
LIGHTNING_EXPERIMENT = "bench-lightning"
KERAS_EXPERIMENT = "bench-keras"
RESULT_TAG = "BENCH-RESULT "
CHILD_ENV = {
    "KERAS_BACKEND": "torch",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "PYTHONHASHSEED": "0",
    "PYTHONWARNINGS": "ignore",
}
#: Logger hooks timed on the training thread (those a class leaves at Keras' default are left alone).
LIGHTNING_HOOKS = ("log_hyperparams", "log_graph", "log_metrics", "save", "after_save_checkpoint", "finalize")
KERAS_HOOKS = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_batch_end", "on_batch_end", "on_train_end")
STEP_HOOKS = ("log_metrics", "on_train_batch_end", "on_batch_end")


@dataclass(frozen=True)
class Variant:
    framework: str
    name: str
    backend: str  # "-" when no store is involved
    logs: str  # what it writes, for the legend
    compare_to: str | None = None  # the MLflow variant modeltrail must beat
    shipped: bool = True  # False: an illustration, not a shipped adapter option

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
    return out


# ============================================================== child side
class HookTimer:
    """Wall time spent inside a logger's hooks on the calling (training) thread."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, obj: Any, names: tuple[str, ...]) -> None:
        for name in names:
            fn = getattr(obj, name, None)
            if fn is None or getattr(fn, "_is_default", False):  # Keras: keep default hooks default
                continue
            setattr(obj, name, self._timed(name, fn))

    def _timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        seconds, calls, clock = self.seconds, self.calls, time.perf_counter

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            t = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] += clock() - t
                calls[name] += 1

        return inner

    def summary(self) -> dict[str, Any]:
        step_s = sum(self.seconds[n] for n in STEP_HOOKS if n in self.seconds)
        step_calls = sum(self.calls[n] for n in STEP_HOOKS if n in self.calls)
        return {
            "hook_s": sum(self.seconds.values()),
            "step_hook_s": step_s,
            "step_hook_calls": step_calls,
            "hooks": {k: [round(v, 6), self.calls[k]] for k, v in self.seconds.items()},
        }


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of every live Python thread but the main one, by native id."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for t in threading.enumerate():
        if t is threading.main_thread() or t.native_id is None:
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/self/task/{t.native_id}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            out[t.native_id] = (t.name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def background_cpu(before: Mapping[int, tuple[str, float]]) -> list[str]:
    """The threads still alive that used CPU since ``before``, as ``name=seconds`` (for the profile report)."""
    names = []
    for tid, (name, cpu) in thread_cpu().items():
        used = cpu - before.get(tid, (name, 0.0))[1]
        if used > 0:
            names.append(f"{name}={used:.2f}s")
    return names


@contextlib.contextmanager
def profiled(enabled: bool, into: dict[str, Any]) -> Iterator[None]:
    if not enabled:
        yield
        return
    prof = cProfile.Profile()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        out.write("--- modeltrail's and the loggers' own functions, by cumulative time ---\n")
        stats.sort_stats("cumulative").print_stats(r"modeltrail|integrations|mlflow|logger_connector|callback", 40)
        out.write("--- everything, by own time ---\n")
        stats.sort_stats("tottime").print_stats(25)
        into["profile"] = out.getvalue()


def synthetic(samples: int, seed: int) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, FEATURES), dtype=np.float32)
    w = rng.standard_normal((FEATURES, CLASSES), dtype=np.float32)
    y = (x @ w + 0.5 * rng.standard_normal((samples, CLASSES), dtype=np.float32)).argmax(axis=1).astype(np.int64)
    return x, y


def child_lightning(spec: dict[str, Any]) -> dict[str, Any]:
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers.logger import Logger

    name, uri = spec["variant"], spec.get("uri")
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    x, y = synthetic(spec["samples"], spec["seed"])
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=spec["batch"], shuffle=True, generator=torch.Generator().manual_seed(spec["seed"])
    )

    class MLP(pl.LightningModule):
        def __init__(self, hidden: int = HIDDEN, lr: float = 1e-3) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(FEATURES, hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, CLASSES),
            )

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            xb, yb = batch
            loss = torch.nn.functional.cross_entropy(self.net(xb), yb)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    class NullLogger(Logger):
        @property
        def name(self) -> str:
            return "null"

        @property
        def version(self) -> str:
            return "0"

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            pass

        def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
            pass

    def make_logger() -> Any:
        if name == "none":
            return False
        if name == "null":
            return NullLogger()
        if name == "modeltrail":
            from modeltrail.integrations.lightning import ModeltrailLogger

            return ModeltrailLogger(LIGHTNING_EXPERIMENT, uri=uri)
        from lightning.pytorch.loggers import MLFlowLogger

        return MLFlowLogger(
            experiment_name=LIGHTNING_EXPERIMENT,
            tracking_uri=uri,
            synchronous=False if name == "mlflow-async" else None,
        )

    if name.startswith("modeltrail"):
        import modeltrail.integrations.lightning  # noqa: F401  (imports outside the clock, as in a script)
    elif name.startswith("mlflow"):
        import mlflow
        import mlflow.store.tracking.sqlalchemy_store
    module = MLP()
    timer = HookTimer()
    result: dict[str, Any] = {}
    before = thread_cpu()
    t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
    with profiled(spec.get("profile", False), result):
        logger = make_logger()
        if logger:
            timer.wrap(logger, LIGHTNING_HOOKS)
        trainer = pl.Trainer(
            max_epochs=spec["epochs"],
            logger=logger,
            log_every_n_steps=1,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            accelerator="cpu",
            devices=1,
            default_root_dir=spec["workdir"],
            num_sanity_val_steps=0,
        )
        trainer.fit(module, loader)
        if name == "mlflow-async":
            mlflow.flush_async_logging()
    fit_s, cpu_s, main_s = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - m0
    bg_s = max(0.0, cpu_s - main_s)  # every other thread, those that ended during the fit included
    bg_threads = background_cpu(before)
    steps = len(loader) * spec["epochs"]
    result.update(
        fit_s=fit_s,
        cpu_s=cpu_s,
        main_cpu_s=main_s,
        bg_cpu_s=bg_s,
        bg_threads=bg_threads,
        steps=steps,
        **timer.summary(),
    )
    if name == "modeltrail":
        from modeltrail import Tracker

        version = logger.model_version
        got = len(Tracker(uri).metric_history(version, "train_loss")) if version is not None else 0
        result.update(points_ok=got == steps, points=got, version=version.number if version else None)
    elif name.startswith("mlflow"):
        got = len(mlflow.MlflowClient(uri).get_metric_history(logger.run_id, "train_loss"))
        result["points_ok"] = got == steps
        result["points"] = got
    return result


def child_keras(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ["KERAS_BACKEND"] = "torch"
    import keras

    name, uri = spec["variant"], spec.get("uri")
    if spec.get("threads"):
        import torch

        torch.set_num_threads(spec["threads"])
    keras.utils.set_random_seed(spec["seed"])
    x, y = synthetic(spec["samples"], spec["seed"])
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(CLASSES),
        ],
        name="bench_mlp",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    class NullBatchCallback(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
            pass

    def make_callback() -> Any:
        if name == "null":
            return NullBatchCallback()
        if name.startswith("modeltrail"):
            from modeltrail.integrations.keras import ModeltrailCallback

            class StepModeltrailCallback(ModeltrailCallback):
                """What a ``log_every_n_steps=1`` option would do: every batch's logs as ``batch_*``."""

                def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
                    run = self._live()
                    if run is not None and logs:
                        step = int(self.model.optimizer.iterations.numpy())
                        for key, value in logs.items():
                            run.log_metric(f"batch_{key}", float(value), step)

            cls = StepModeltrailCallback if name == "modeltrail-step" else ModeltrailCallback
            return cls(KERAS_EXPERIMENT, uri, artifact_dir=os.path.join(spec["workdir"], "keras-models"))
        if name.startswith("mlflow"):
            from mlflow.keras import MlflowCallback

            if name == "mlflow-step":
                return MlflowCallback(log_every_epoch=False, log_every_n_steps=1)
            return MlflowCallback(log_every_epoch=True)
        return None

    if name.startswith("modeltrail"):
        import modeltrail.integrations.keras  # noqa: F401  (imports outside the clock, as in a script)
    elif name.startswith("mlflow"):
        import mlflow
        import mlflow.keras
        import mlflow.store.tracking.sqlalchemy_store
    timer = HookTimer()
    result: dict[str, Any] = {}
    before = thread_cpu()
    run_id = None
    t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
    with profiled(spec.get("profile", False), result):
        callback = make_callback()
        callbacks = [callback] if callback is not None else []
        if callback is not None:
            timer.wrap(callback, KERAS_HOOKS)
        fit = functools.partial(
            model.fit, x, y, batch_size=spec["batch"], epochs=spec["epochs"], verbose=0, callbacks=callbacks
        )
        if name.startswith("mlflow"):
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment(KERAS_EXPERIMENT)
            with mlflow.start_run() as run:
                run_id = run.info.run_id
                fit()
                mlflow.flush_async_logging()
        else:
            fit()
    fit_s, cpu_s, main_s = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - m0
    bg_s = max(0.0, cpu_s - main_s)  # every other thread, those that ended during the fit included
    bg_threads = background_cpu(before)
    steps = math.ceil(spec["samples"] / spec["batch"]) * spec["epochs"]
    result.update(
        fit_s=fit_s,
        cpu_s=cpu_s,
        main_cpu_s=main_s,
        bg_cpu_s=bg_s,
        bg_threads=bg_threads,
        steps=steps,
        **timer.summary(),
    )
    if name.startswith("modeltrail"):
        from modeltrail import Tracker

        version = callback.version
        key, want = ("batch_loss", steps) if name == "modeltrail-step" else ("loss", spec["epochs"])
        got = len(Tracker(uri).metric_history(version, key)) if version is not None else 0
        result.update(points_ok=got == want, points=got, version=version.number if version else None)
    elif name.startswith("mlflow"):
        want = steps if name == "mlflow-step" else spec["epochs"]
        got = len(mlflow.MlflowClient(uri).get_metric_history(run_id, "loss"))
        result.update(points_ok=got == want, points=got)
    return result


def child_setup(spec: dict[str, Any]) -> dict[str, Any]:
    """Create both stores' schemas and experiments, so that no measured run pays for a migration."""
    import mlflow

    from modeltrail import Tracker

    tracker = Tracker(spec["mt_uri"])
    tracker.models()
    tracker.close()
    client = mlflow.MlflowClient(spec["mlflow_uri"])
    for experiment in (LIGHTNING_EXPERIMENT, KERAS_EXPERIMENT):
        if client.get_experiment_by_name(experiment) is None:
            location = os.path.join(spec["workdir"], "mlflow-artifacts", experiment)
            client.create_experiment(experiment, artifact_location=f"file://{location}")
    return {}


def child_main(raw: str) -> None:
    spec = json.loads(raw)
    os.chdir(spec["workdir"])
    kind = spec["kind"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")  # the frameworks' own deprecation chatter
        if spec.get("variant", "").startswith("modeltrail"):
            from modeltrail.integrations._common import ModeltrailWarning

            warnings.simplefilter("always", ModeltrailWarning)  # what modeltrail could not record: reported
        if kind == "setup":
            result = child_setup(spec)
        elif spec["framework"] == "lightning":
            result = child_lightning(spec)
        else:
            result = child_keras(spec)
    result["warnings"] = sorted({str(w.message) for w in caught})
    sys.stdout.write(RESULT_TAG + json.dumps(result) + "\n")
    sys.stdout.flush()


# ============================================================= parent side
def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = {**os.environ, **CHILD_ENV}
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    raise RuntimeError(f"child {spec.get('kind')} {spec.get('variant', '')} failed (rc {proc.returncode}):\n{tail}")


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
class Stores:
    """One modeltrail and one MLflow database per backend, made fresh and dropped at the end."""

    workdir: str
    tag: str
    urls: dict[tuple[str, str], str] = field(default_factory=dict)
    made: list[str] = field(default_factory=list)

    def make(self, backend: str) -> None:
        for store, prefix in (("modeltrail", "mt_benchad"), ("mlflow", "mlflow_benchad")):
            if backend == "sqlite":
                url = f"sqlite:///{os.path.join(self.workdir, prefix + '.db')}"
            else:
                database = f"{prefix}_{self.tag}"
                mysql_admin(f"DROP DATABASE IF EXISTS `{database}`")
                mysql_admin(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
                self.made.append(database)
                url = mysql_url(database)
            self.urls[(backend, store)] = url

    def drop(self) -> None:
        for database in self.made:
            with contextlib.suppress(Exception):
                mysql_admin(f"DROP DATABASE IF EXISTS `{database}`")
        self.made.clear()


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
        per_step = s.mean_of("step_hook_s") / max(1, s.runs[0]["step_hook_calls"]) * 1e6
        target = ""
        if v.name.startswith("modeltrail"):
            rival = by_key.get(f"{v.framework}:{v.compare_to}:{v.backend}")
            ok_over = over < TARGET_OVERHEAD
            target = f"{'PASS' if ok_over else 'FAIL'} <{TARGET_OVERHEAD:g}%"
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
    cells = [head, *rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    align = ["<", "<", "<", ">", ">", ">", ">", ">", ">", ">", ">", ">", "<", "<"]

    def fmt(c: tuple[str, ...]) -> str:
        return "  ".join(f"{val:{a}{w}}" for val, a, w in zip(c, align, widths, strict=True)).rstrip()

    print(fmt(head))
    print("  ".join("-" * w for w in widths))
    last = None
    for c in rows:
        if last is not None and c[0] != last:
            print()
        last = c[0]
        print(fmt(c))
    return verdicts


def profile_one(target: str, args: argparse.Namespace, stores: Stores, workdir: str) -> None:
    framework, name, backend = [*target.split(":"), "sqlite", "sqlite"][:3]
    v = next(
        (x for x in variants([framework], [backend], True) if x.name == name and x.backend in (backend, "-")), None
    )
    if v is None:
        raise SystemExit(f"--profile: no variant {target!r}")
    spec = spec_for(v, args, stores, workdir) | {"profile": True}
    res = run_child(spec, timeout=args.timeout)
    print(f"\n=== cProfile of the timed region of {v.key} (training thread only; fit {res['fit_s']:.2f} s) ===")
    print(res["profile"])
    print(f"hooks (s, calls): {res['hooks']}; background threads: {res['bg_threads']}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller fits and 2 repeats: a few minutes")
    p.add_argument("--backends", default="sqlite,mysql", help="comma-separated: sqlite, mysql (default both)")
    p.add_argument("--frameworks", default="lightning,keras", help="comma-separated: lightning, keras")
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
    for attr, full, small in (
        ("repeats", 3, 2),
        ("samples", 20_000, 10_000),
        ("lightning_epochs", 12, 3),
        ("keras_epochs", 10, 3),
    ):
        if getattr(args, attr) is None:
            setattr(args, attr, small if args.quick else full)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    args.variants = (
        {v.strip() for v in args.variants.split(",") if v.strip()} | {"none", "null"} if args.variants else None
    )
    for b in args.backends:
        if b not in ("sqlite", "mysql"):
            p.error(f"unknown backend {b!r}")
    for f in args.frameworks:
        if f not in ("lightning", "keras"):
            p.error(f"unknown framework {f!r}")
    return args


def step(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--child":
        child_main(argv[1])
        return 0
    args = parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="modeltrail-benchad-")
    stores = Stores(workdir, str(os.getpid()))
    backends = list(args.backends)
    if args.profile:
        parts = args.profile.split(":")
        backends = [parts[2]] if len(parts) > 2 else ["sqlite"]
    try:
        for backend in backends:
            step(f"{backend}: fresh modeltrail and MLflow databases (schemas made before any timed run)")
            stores.make(backend)
            run_child(
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
                    res = run_child(spec_for(v, args, stores, workdir), timeout=args.timeout)
                    stats[v.key].runs.append(res)
                    step(
                        f"{framework} repeat {r + 1}/{args.repeats}: {v.name:<15} {v.backend:<6} "
                        f"fit {res['fit_s']:6.2f} s  hooks {res['hook_s'] * 1e3:7.0f} ms  "
                        f"bg CPU {res['bg_cpu_s']:.2f} s  points {res.get('points', '-')}"
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
        null = {f: stats[f"{f}:null:-"].median for f in args.frameworks}
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
