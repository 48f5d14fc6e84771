"""CLI cold start: every `modeltrail` command a user types first, against the nearest `mlflow` command.

Each command runs in a fresh process (as a shell does), ``--repeat`` times, and the median wall
time is printed beside MLflow's for the same ledger contents on the same machine in the same run,
with their ratio. The goal (issue 15, item 8): under half of MLflow's time for every command.

    python benchmarks/bench_cli.py                  # SQLite and MariaDB, 7 runs of each command
    python benchmarks/bench_cli.py --backends sqlite --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CHILD_ENV, drop_mysql_database, fresh_mysql_database, parse_backends, print_columns, step

MODEL = "churn-rf"
VERSIONS = 20

#: (what a user asks, modeltrail's command, MLflow's nearest command). MLflow's CLI has no model
#: listing, leaderboard or best-version command; its run listing is what a user would reach for.
RUNS = ["runs", "list", "--experiment-id", "{experiment}"]
COMMANDS = (
    ("version banner", ["--version"], ["--version"]),
    ("list models", ["models"], ["experiments", "search"]),
    ("one model's versions", ["show", MODEL], RUNS),
    ("best version by a metric", ["best", MODEL, "--metric", "val_auc"], RUNS),
    ("leaderboard", ["leaderboard", MODEL, "--metric", "val_auc"], RUNS),
)


def fill(modeltrail_uri: str, mlflow_uri: str) -> str:
    """The same 20 trainings in both ledgers; MLflow's experiment id."""
    code = f"""
import random, modeltrail, mlflow
random.seed(0)
tracker = modeltrail.Tracker({modeltrail_uri!r})
mlflow.set_tracking_uri({mlflow_uri!r})
experiment = mlflow.set_experiment({MODEL!r}).experiment_id
for i in range({VERSIONS}):
    params = {{"n_estimators": 40 + i, "max_depth": 4 + i % 5}}
    auc = 0.8 + random.random() / 10
    with tracker.training({MODEL!r}, framework="sklearn", params=params) as run:
        run.log_metric("val_auc", auc)
    with mlflow.start_run():
        mlflow.log_params(params)
        mlflow.log_metric("val_auc", auc)
tracker.close()
print(experiment)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, **CHILD_ENV}
    )
    return done.stdout.split()[-1]


def median_seconds(argv: list[str], env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return statistics.median(times)


def run_backend(backend: str, repeat: int, workdir: Path) -> list[tuple[str, ...]]:
    bindir = Path(sys.executable).parent
    modeltrail_cmd, mlflow_cmd = shutil.which("modeltrail", path=str(bindir)), shutil.which("mlflow", path=str(bindir))
    if modeltrail_cmd is None or mlflow_cmd is None:
        raise SystemExit(f"needs the modeltrail and mlflow commands beside {sys.executable}")
    if backend == "sqlite":
        ours, theirs = f"sqlite:///{workdir / 'modeltrail.db'}", f"sqlite:///{workdir / 'mlflow.db'}"
    else:
        ours, theirs = fresh_mysql_database("mt_bench_cli"), fresh_mysql_database("mlflow_bench_cli")
    step(f"{backend}: {VERSIONS} trainings in each ledger")
    experiment = fill(ours, theirs)
    env = {**os.environ, **CHILD_ENV, "MODELTRAIL_URI": ours, "MLFLOW_TRACKING_URI": theirs}
    rows = []
    for what, mine, mlflows in COMMANDS:
        step(f"{backend}: {what}")
        ours_s = median_seconds([modeltrail_cmd, *mine], env, repeat)
        their_argv = [mlflow_cmd, *(a.format(experiment=experiment) for a in mlflows)]
        theirs_s = median_seconds(their_argv, env, repeat)
        verdict = "ok" if ours_s <= theirs_s / 2 else "MISSED"
        rows.append(
            (
                backend,
                what,
                f"modeltrail {' '.join(mine)}",
                f"{ours_s:.2f}",
                f"mlflow {' '.join(their_argv[1:])}",
                f"{theirs_s:.2f}",
                f"{ours_s / theirs_s:.2f}",
                verdict,
            )
        )
    if backend == "mysql":
        for name in ("mt_bench_cli", "mlflow_bench_cli"):
            drop_mysql_database(name)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backends", default="sqlite,mysql", help="comma-separated: sqlite, mysql")
    parser.add_argument("--repeat", type=int, default=7, help="runs of each command (the median is shown)")
    args = parser.parse_args()
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        for backend in parse_backends(parser, args.backends):
            rows += run_backend(backend, args.repeat, Path(tmp))
    print(f"median wall time of {args.repeat} fresh processes per command, seconds")
    print_columns(
        ("backend", "question", "modeltrail", "s", "mlflow", "s", "ratio", "goal <= 0.5"),
        rows,
        ("<", "<", "<", ">", "<", ">", ">", "<"),
        gap_between_groups=True,
    )
    return 0 if all(row[-1] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
