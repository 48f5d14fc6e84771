#!/usr/bin/env python3
"""The child side of ``bench_adapters.py``: one Lightning or Keras fit, timed from inside, in this process.

``bench_adapters.py`` runs this file once per measurement (``python _adapter_workloads.py SPEC_JSON``) and
reads back the figures it emits: wall time of the timed region (logger built, fit, final flush), process and
training-thread CPU, time in the logger's hooks on the training thread, and whether every point reached
the store. ``kind: setup`` creates both stores' schemas and experiments first, so no timed run pays for them.

More workloads plug in as modules beside this one, ``_adapter_workloads_<name>.py`` (found by
:func:`workload_modules`, no list to edit). Each declares:

* ``FRAMEWORKS``: the framework names it measures (``--frameworks`` values), e.g. ``("xgboost",)``;
* ``variants(framework, backends) -> list[dict]``: the variants, as :class:`bench_adapters.Variant` fields
  (``name``, ``backend``, ``logs``; optionally ``compare_to``, ``shipped``, ``target``: the % overhead allowed).
  One is named ``none`` with backend ``-`` (the baseline); ``null`` (a do-nothing logger) is optional. A variant
  whose name starts with ``modeltrail`` or ``mlflow`` gets that store's ``uri`` in its spec;
* ``child(spec) -> dict``: runs one measurement in this process and returns the figures, made with
  :func:`timed_fit` and :class:`HookTimer` like :func:`child_keras` (``fit_s``, ``steps`` and
  ``timer.summary()``; ``points_ok`` / ``points`` when it checked the store). It imports its framework inside.
  ``overhead_pct`` replaces the wall-time comparison with ``none`` when the workload measures its cost itself,
  and ``note`` is printed with the run.
"""

from __future__ import annotations

import contextlib
import cProfile
import functools
import io
import json
import math
import os
import pstats
import sys
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from _common import emit_result

FEATURES, CLASSES, HIDDEN = 32, 10, 256
LIGHTNING_EXPERIMENT = "bench-lightning"
KERAS_EXPERIMENT = "bench-keras"
#: Logger hooks timed on the training thread (those a class leaves at Keras' default are left alone).
LIGHTNING_HOOKS = ("log_hyperparams", "log_graph", "log_metrics", "save", "after_save_checkpoint", "finalize")
KERAS_HOOKS = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_batch_end", "on_batch_end", "on_train_end")
STEP_HOOKS = ("log_metrics", "on_train_batch_end", "on_batch_end")


# ------------------------------------------------------------------ timing
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


@contextlib.contextmanager
def timed_fit(spec: Mapping[str, Any], result: dict[str, Any], timer: HookTimer) -> Iterator[None]:
    """The timed region: its wall time, the process's and the training thread's CPU, and the hooks' time."""
    before = thread_cpu()
    t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
    with profiled(spec.get("profile", False), result):
        yield
    fit_s, cpu_s, main_s = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - m0
    result.update(
        fit_s=fit_s,
        cpu_s=cpu_s,
        main_cpu_s=main_s,
        bg_cpu_s=max(0.0, cpu_s - main_s),  # every other thread, those that ended during the fit included
        bg_threads=background_cpu(before),
        **timer.summary(),
    )


def modeltrail_points(uri: str | None, version: Any, key: str, want: int) -> dict[str, Any]:
    """Whether the version's training holds ``want`` points of ``key``."""
    from modeltrail import Tracker

    got = len(Tracker(uri).metric_history(version, key)) if version is not None else 0
    return {"points_ok": got == want, "points": got, "version": version.number if version else None}


def mlflow_points(uri: str | None, run_id: Any, key: str, want: int) -> dict[str, Any]:
    """Whether MLflow's run holds ``want`` points of ``key``."""
    import mlflow

    got = len(mlflow.MlflowClient(uri).get_metric_history(run_id, key))
    return {"points_ok": got == want, "points": got}


# --------------------------------------------------------------- workloads
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
    with timed_fit(spec, result, timer):
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
    steps = result["steps"] = len(loader) * spec["epochs"]
    if name == "modeltrail":
        result.update(modeltrail_points(uri, logger.model_version, "train_loss", steps))
    elif name.startswith("mlflow"):
        result.update(mlflow_points(uri, logger.run_id, "train_loss", steps))
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
                    run = self._life.live
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
    run_id = None
    with timed_fit(spec, result, timer):
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
    steps = result["steps"] = math.ceil(spec["samples"] / spec["batch"]) * spec["epochs"]
    if name.startswith("modeltrail"):
        key, want = ("batch_loss", steps) if name == "modeltrail-step" else ("loss", spec["epochs"])
        result.update(modeltrail_points(uri, callback.version, key, want))
    elif name.startswith("mlflow"):
        result.update(mlflow_points(uri, run_id, "loss", steps if name == "mlflow-step" else spec["epochs"]))
    return result


def workload_modules() -> dict[str, Any]:
    """The plugged-in workload modules (``_adapter_workloads_<name>.py`` beside this file), by framework name."""
    import importlib
    import pathlib

    here = pathlib.Path(__file__).resolve().parent
    if str(here) not in sys.path:
        sys.path.insert(0, str(here))
    found: dict[str, Any] = {}
    for path in sorted(here.glob("_adapter_workloads_*.py")):
        module = importlib.import_module(path.stem)
        for framework in module.FRAMEWORKS:
            found[framework] = module
    return found


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
            from modeltrail import ModeltrailWarning

            warnings.simplefilter("always", ModeltrailWarning)  # what modeltrail could not record: reported
        if kind == "setup":
            result = child_setup(spec)
        elif spec["framework"] == "lightning":
            result = child_lightning(spec)
        elif spec["framework"] == "keras":
            result = child_keras(spec)
        else:
            result = workload_modules()[spec["framework"]].child(spec)
    result["warnings"] = sorted({str(w.message) for w in caught})
    emit_result(result)


if __name__ == "__main__":
    child_main(sys.argv[1])
