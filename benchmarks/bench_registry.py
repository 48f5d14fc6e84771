"""The registry holds the model: loading a version back, and what logging a big artifact costs the caller.

Side by side in one run, on SQLite and a local artifact folder, modeltrail against MLflow's SQL
tracking store and its registry (``mlflow.sklearn.load_model("models:/name/1")``):

* ``load_model`` of a ~50 MB scikit-learn model (a k-nearest-neighbours classifier keeps its training
  data), uncached (modeltrail's cache emptied before each call: copy from the store, verify the
  sha256, unpickle) and cached (verify the cached copy, unpickle). MLflow downloads the artifact
  into a temporary folder on every call, so it has one figure.
* The caller's cost of ``log_artifact`` for a 200 MB file (modeltrail only queues it: the hash and
  the copy happen on the writer thread, and the training's end waits for them; that wait is shown
  as well) against ``mlflow.log_artifact`` (copies before it returns).

No figure is asserted: they depend on the machine. ``--quick`` uses 10 MB and 40 MB files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
warnings.filterwarnings("ignore")


def timed(fn: Callable[[], Any], repeats: int, before: Callable[[], Any] | None = None) -> list[float]:
    out = []
    for _ in range(repeats):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def big_model(megabytes: int) -> Any:
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier

    rows = megabytes * (1 << 20) // (16 * 8)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 16))
    return KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(X, (X[:, 0] > 0).astype(int))


def bench_load(work: Path, megabytes: int, repeats: int) -> dict[str, list[float]]:
    import joblib
    import mlflow
    import mlflow.sklearn

    import modeltrail

    model = big_model(megabytes)
    path = work / "knn.joblib"
    joblib.dump(model, path)
    print(f"model file: {path.stat().st_size / 1e6:.1f} MB", flush=True)
    cache = work / "cache"
    tracker = modeltrail.Tracker(f"sqlite:///{work / 'mt.db'}", artifacts=str(work / "store"), cache_dir=cache)
    with tracker.training("knn") as run:
        run.log_artifact(path, flavor="sklearn")
    figures = {
        "modeltrail load_model, uncached": timed(
            lambda: tracker.load_model("knn", version=1), repeats, before=lambda: shutil.rmtree(cache, True)
        ),
    }
    tracker.load_model("knn", version=1)
    figures["modeltrail load_model, cached"] = timed(lambda: tracker.load_model("knn", version=1), repeats)
    tracker.close()

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    mlflow.set_experiment("bench")
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", registered_model_name="knn")
    figures["mlflow.sklearn.load_model('models:/knn/1')"] = timed(
        lambda: mlflow.sklearn.load_model("models:/knn/1"), repeats
    )
    return figures


def bench_log_artifact(work: Path, megabytes: int, repeats: int) -> dict[str, list[float]]:
    import mlflow

    import modeltrail

    big = work / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(megabytes):
            fh.write(os.urandom(1 << 20))
    print(f"artifact file: {big.stat().st_size / 1e6:.0f} MB", flush=True)
    tracker = modeltrail.Tracker(f"sqlite:///{work / 'mt2.db'}", artifacts=str(work / "store2"))
    calls: list[float] = []
    ends: list[float] = []
    for i in range(repeats):
        with tracker.training("big") as run:
            run.log_param("i", i)
            t0 = time.perf_counter()
            run.log_artifact(big, name="model", flavor="file")
            calls.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
        ends.append(time.perf_counter() - t1)
    tracker.close()
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow2.db'}")
    mlflow.set_experiment("bench-artifact")
    mlflow_calls = []
    for _ in range(repeats):
        with mlflow.start_run():
            t0 = time.perf_counter()
            mlflow.log_artifact(str(big))
            mlflow_calls.append(time.perf_counter() - t0)
    return {
        "modeltrail log_artifact (caller)": calls,
        "modeltrail training end (waits for hash + copy)": ends,
        "mlflow.log_artifact (caller)": mlflow_calls,
    }


def report(title: str, figures: dict[str, list[float]], reference: str) -> None:
    print(f"\n{title}")
    width = max(map(len, figures))
    base = statistics.median(figures[reference])
    print(f"  {'':{width}}  {'median':>10}  {'min':>10}  {'max':>10}  {'mlflow ÷ this':>14}")
    for name, values in figures.items():
        median = statistics.median(values)
        ratio = base / median if median else float("inf")
        print(
            f"  {name:{width}}  {median * 1e3:8.2f}ms  {min(values) * 1e3:8.2f}ms  {max(values) * 1e3:8.2f}ms"
            f"  {ratio:12.1f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 MB model, 40 MB artifact, 3 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    model_mb, artifact_mb = (10, 40) if args.quick else (50, 200)
    repeats = args.repeats or (3 if args.quick else 5)
    work = Path(tempfile.mkdtemp(prefix="mt-bench-registry-"))
    try:
        loads = bench_load(work, model_mb, repeats)
        report(
            f"load_model of a {model_mb} MB scikit-learn model ({repeats} calls each); the last column is MLflow's "
            "median over this row's",
            loads,
            "mlflow.sklearn.load_model('models:/knn/1')",
        )
        logs = bench_log_artifact(work, artifact_mb, repeats)
        report(
            f"log_artifact of a {artifact_mb} MB file ({repeats} trainings each); the last column is MLflow's "
            "median over this row's",
            logs,
            "mlflow.log_artifact (caller)",
        )
        caller = statistics.median(logs["modeltrail log_artifact (caller)"])
        print(f"\nmodeltrail's caller cost {caller * 1e3:.3f} ms (goal: under 1 ms)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
