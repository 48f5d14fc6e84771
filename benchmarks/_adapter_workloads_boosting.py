#!/usr/bin/env python3
"""XGBoost, LightGBM and Optuna cases for ``bench_adapters.py``: no logging, modeltrail's callback, MLflow's.

:data:`FRAMEWORKS`, :func:`variants` and :func:`child` plug it into ``bench_adapters.py`` (a workload module found
by name, see ``_adapter_workloads.py``); :data:`CASES` lists the same variants flat. Run without arguments it is
also its own small driver::

    python benchmarks/_adapter_workloads_boosting.py --repeats 5 --backends sqlite,mysql

The timed region is: the callback built or autolog enabled -> ``train``/``optimize`` -> MLflow's run ended and
its async queue flushed / modeltrail's last training finished (its writer flushed). Imports happen before it.
What each variant writes:

* ``xgboost``: ``xgboost.train``, 2,000 x 32 binary data, 100 rounds, one thread, eval sets train + valid, logloss + auc
  (400 points). ``modeltrail``: ``ModeltrailCallback`` (params, every round, best iteration, importances, JSON
  model, version). ``mlflow``: ``mlflow.xgboost.autolog()`` defaults (params, every round, feature-importance
  artifacts, the logged model with signature).
* ``lightgbm``: ``lightgbm.train`` on the same data, 100 iterations, the same two sets and metrics.
  ``modeltrail``: ``ModeltrailCallback``; ``mlflow``: ``mlflow.lightgbm.autolog()`` defaults.
* ``optuna``: 40 trials of a cheap objective reporting 10 intermediate values each. ``modeltrail``:
  ``ModeltrailCallback`` (each trial a training, intermediate values, value, versions for new bests). ``mlflow``:
  optuna-integration's ``MLflowCallback`` is not installed, so a callback that does what it does by hand: one run
  per trial with ``mlflow.log_params``, ``log_metric`` per intermediate value at its step and the value, tags for
  the state.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from typing import Any

from _common import Databases, comma_list, emit_result, run_child, step

ROUNDS, SAMPLES, FEATURES = 100, 2_000, 32
TRIALS, REPORTS = 40, 10
EXPERIMENT = "bench-boosting"

FRAMEWORKS = ("xgboost", "lightgbm", "optuna")
_LOGS = {
    "modeltrail": "ModeltrailCallback: params, every round / trial, best iteration, importances, model, version",
    "mlflow": "MLflow: xgboost/lightgbm autolog defaults; for optuna one run per trial by hand",
}
#: (framework, variant, compare_to): the MLflow variant each modeltrail one is measured against.
CASES: list[dict[str, Any]] = [
    {"framework": fw, "variant": v, "compare_to": "mlflow" if v == "modeltrail" else None}
    for fw in FRAMEWORKS
    for v in ("none", "modeltrail", "mlflow")
]


def variants(framework: str, backends: list[str]) -> list[dict[str, Any]]:
    """``bench_adapters.py``'s variants: no logging, then modeltrail against MLflow on each backend."""
    out: list[dict[str, Any]] = [{"name": "none", "backend": "-", "logs": f"{framework}: no callback"}]
    for backend in backends:
        out.append({"name": "modeltrail", "backend": backend, "logs": _LOGS["modeltrail"], "compare_to": "mlflow"})
        out.append({"name": "mlflow", "backend": backend, "logs": _LOGS["mlflow"]})
    return out


# --------------------------------------------------------------- workloads
def data() -> tuple[Any, Any, Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((SAMPLES, FEATURES))
    y = (x[:, :4].sum(axis=1) + 0.5 * rng.standard_normal(SAMPLES) > 0).astype(int)
    cut = SAMPLES * 4 // 5
    return x[:cut], y[:cut], x[cut:], y[cut:]


def run_xgboost(variant: str, uri: str | None) -> float:
    import xgboost as xgb

    x, y, xv, yv = data()
    dtrain, dvalid = xgb.DMatrix(x, y), xgb.DMatrix(xv, yv)
    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "max_depth": 4, "nthread": 1}
    callbacks: list[Any] = []
    t0 = time.perf_counter()
    if variant == "modeltrail":
        from modeltrail.integrations.xgboost import ModeltrailCallback

        callbacks.append(ModeltrailCallback("bench-xgb", uri))
    elif variant == "mlflow":
        import mlflow.xgboost

        mlflow.xgboost.autolog()
    xgb.train(
        params, dtrain, ROUNDS, evals=[(dtrain, "train"), (dvalid, "valid")], callbacks=callbacks, verbose_eval=False
    )
    return t0


def run_lightgbm(variant: str, uri: str | None) -> float:
    import lightgbm as lgb

    x, y, xv, yv = data()
    train = lgb.Dataset(x, y)
    valid = lgb.Dataset(xv, yv, reference=train)
    params = {"objective": "binary", "metric": ["binary_logloss", "auc"], "num_threads": 1, "verbose": -1}
    callbacks: list[Any] = []
    t0 = time.perf_counter()
    if variant == "modeltrail":
        from modeltrail.integrations.lightgbm import ModeltrailCallback

        callbacks.append(ModeltrailCallback("bench-lgb", uri))
    elif variant == "mlflow":
        import mlflow.lightgbm

        mlflow.lightgbm.autolog()
    lgb.train(params, train, ROUNDS, valid_sets=[train, valid], valid_names=["train", "valid"], callbacks=callbacks)
    return t0


class MlflowTrials:
    """What optuna-integration's ``MLflowCallback`` records, by hand: one MLflow run per trial."""

    def __call__(self, study: Any, trial: Any) -> None:
        import mlflow

        with mlflow.start_run(run_name=str(trial.number)):
            mlflow.log_params(trial.params)
            for step_, value in trial.intermediate_values.items():
                mlflow.log_metric("intermediate_value", value, step=step_)
            if trial.value is not None:
                mlflow.log_metric("value", trial.value)
            mlflow.set_tags({"trial_number": str(trial.number), "state": trial.state.name})


def run_optuna(variant: str, uri: str | None) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", -10, 10)
        n = trial.suggest_int("n", 1, 8)
        for i in range(REPORTS):
            trial.report((x - 2) ** 2 + n / (i + 1), i)
        return (x - 2) ** 2 + n

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    callbacks: list[Any] = []
    t0 = time.perf_counter()
    if variant == "modeltrail":
        from modeltrail.integrations.optuna import ModeltrailCallback

        callbacks.append(ModeltrailCallback("bench-optuna", uri))
    elif variant == "mlflow":
        callbacks.append(MlflowTrials())
    study.optimize(objective, n_trials=TRIALS, callbacks=callbacks)
    return t0


RUNNERS = {"xgboost": run_xgboost, "lightgbm": run_lightgbm, "optuna": run_optuna}


# ------------------------------------------------------------------- child
def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement (``spec["uri"]``: the store of a ``modeltrail`` or ``mlflow`` variant), or the setup."""
    from _adapter_workloads import HookTimer, timed_fit

    os.chdir(spec["workdir"])
    framework, variant, uri = spec["framework"], spec["variant"], spec.get("uri")
    import mlflow  # imported outside the timed region by every variant alike

    import modeltrail
    from modeltrail._adapter import close_all

    if spec.get("kind") == "setup":
        modeltrail.Tracker(spec["mt_uri"]).close()
        mlflow.set_tracking_uri(spec["mlflow_uri"])
        if mlflow.get_experiment_by_name(EXPERIMENT) is None:
            mlflow.create_experiment(EXPERIMENT, artifact_location=f"file://{spec['workdir']}/mlflow-artifacts")
        return {}
    if variant == "mlflow":
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(EXPERIMENT)
    __import__(framework)
    result: dict[str, Any] = {}
    with timed_fit(spec, result, HookTimer()):
        RUNNERS[framework](variant, uri if variant == "modeltrail" else None)
        if variant == "modeltrail":
            close_all()  # every queued point written, the writer stopped (the trainings' ends flushed already)
        elif variant == "mlflow":
            mlflow.flush_async_logging()
            if mlflow.active_run() is not None:
                mlflow.end_run()
    result["steps"] = TRIALS if framework == "optuna" else ROUNDS
    return result


# ------------------------------------------------------------------ driver
def measure(me: str, base: dict[str, Any], backend: str, framework: str, repeats: int) -> tuple[str, ...]:
    """Each variant ``repeats`` times, interleaved; the medians' added time over no logging, and the ratio."""
    times: dict[str, list[float]] = {"none": [], "modeltrail": [], "mlflow": []}
    for r in range(repeats):
        order = list(times)[r % 3 :] + list(times)[: r % 3]  # rotated: drift in the machine's load hits all alike
        for variant in order:
            uri = {"modeltrail": base["mt_uri"], "mlflow": base["mlflow_uri"]}.get(variant)
            spec = {**base, "kind": "run", "framework": framework, "variant": variant, "uri": uri}
            times[variant].append(run_child([me, json.dumps(spec)], what=f"{framework} {variant}")["fit_s"])
            step(f"{backend} {framework} {variant}: {times[variant][-1]:.3f} s")
    none = statistics.median(times["none"])
    mt_added = statistics.median(times["modeltrail"]) - none
    ml_added = statistics.median(times["mlflow"]) - none
    ratio = mt_added / ml_added if ml_added > 0 else float("nan")
    return (backend, framework, f"{none:.3f}", f"{mt_added:+.3f}", f"{ml_added:+.3f}", f"{ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", type=comma_list, default=["sqlite"])
    parser.add_argument("--frameworks", type=comma_list, default=["xgboost", "lightgbm", "optuna"])
    args = parser.parse_args()
    me = os.path.abspath(__file__)
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(prefix="bench-boosting-") as workdir:
        dbs = Databases(workdir, f"{os.getpid()}")
        try:
            for backend in args.backends:
                base = {
                    "workdir": workdir,
                    "mt_uri": dbs.url(backend, f"mt_benchboost_{backend}"),
                    "mlflow_uri": dbs.url(backend, f"mlflow_benchboost_{backend}"),
                }
                step(f"{backend}: setting up both stores")
                run_child([me, json.dumps({**base, "kind": "setup", "framework": "-", "variant": "-"})], what="setup")
                for framework in args.frameworks:
                    rows.append(measure(me, base, backend, framework, args.repeats))
        finally:
            dbs.drop()
    header = ("backend", "framework", "none_s", "modeltrail_added_s", "mlflow_added_s", "ratio (goal <= 0.50)")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1].startswith("{"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            emit_result(child(json.loads(sys.argv[1])))
    else:
        main()
