"""Serving one scikit-learn model: ``modeltrail serve`` against ``mlflow models serve``, side by side.

The same fitted model (a random forest on 20 features) is recorded in a modeltrail ledger (SQLite in a
temporary folder) and deployed to ``production``, and saved as an MLflow model; each server runs as
its own process on 127.0.0.1 with one uvicorn worker (``mlflow models serve --env-manager local``:
the local environment, no virtualenv). A bounded Python client (``--clients`` processes, each one
keep-alive connection sending requests back to back; ``--seconds`` per server and body size, split
into ``--rounds`` that alternate between the servers) measures requests per second and the latency
of each request, for single-row and 100-row bodies in MLflow's ``dataframe_split``
shape, which both servers accept. Before measuring, both servers' predictions for the same rows are
compared. Nothing is asserted about time: the figures depend on the machine and on what else runs.

    .venv-bench/bin/python benchmarks/bench_serving.py [--seconds 8] [--clients 4] [--rounds 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import CHILD_ENV, print_columns, step

FEATURES = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(folder: Path) -> tuple[str, Path, Any]:
    """The model in a modeltrail ledger (deployed) and as an MLflow model; (ledger URL, MLflow dir, rows)."""
    import joblib
    import mlflow.sklearn
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    import modeltrail

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5_000, FEATURES))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(x, y)
    url = f"sqlite:///{folder / 'ledger.db'}"
    path = folder / "forest.joblib"
    joblib.dump(model, path)
    with modeltrail.Tracker(url) as tracker:
        with tracker.training("bench-forest", framework="sklearn", model_type="classifier") as run:
            run.log_artifact(path)
        tracker.flush()
        tracker.deploy("bench-forest", run.version.number, "production")
    mlflow_dir = folder / "mlflow-model"
    # Pickled, as modeltrail's joblib file is (MLflow's default, skops, refuses the forest's tree type).
    mlflow.sklearn.save_model(model, str(mlflow_dir), serialization_format="pickle")
    return url, mlflow_dir, rng.normal(size=(100, FEATURES)).round(6).tolist()


def wait_ready(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode} before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer /health within {timeout:.0f} s")


def scripts_dir() -> Path:
    """The folder holding the ``uvicorn`` command, which ``mlflow models serve`` runs by name."""
    import mlflow

    for folder in (Path(sys.executable).parent, Path(mlflow.__file__).resolve().parents[4] / "bin"):
        if (folder / "uvicorn").exists():
            return folder
    raise SystemExit("mlflow models serve runs `uvicorn`, which is not installed beside this Python")


def start_servers(url: str, mlflow_dir: Path, folder: Path) -> dict[str, tuple[subprocess.Popen[bytes], int, str]]:
    env = {**os.environ, **CHILD_ENV, "PATH": f"{scripts_dir()}{os.pathsep}{os.environ.get('PATH', '')}"}
    mt_port, mlflow_port = free_port(), free_port()
    modeltrail_cmd = [sys.executable, "-m", "modeltrail.cli", "--uri", url, "serve", "bench-forest"]
    modeltrail_cmd += ["--env", "production", "--port", str(mt_port)]
    mlflow_cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(mlflow_dir), "--env-manager", "local"]
    mlflow_cmd += ["-h", "127.0.0.1", "-p", str(mlflow_port), "-w", "1"]
    servers = {}
    for name, command, port, path in (
        ("modeltrail serve", modeltrail_cmd, mt_port, "/predict"),
        ("mlflow models serve", mlflow_cmd, mlflow_port, "/invocations"),
    ):
        log = open(folder / f"{name.split()[0]}.log", "wb")  # noqa: SIM115 - kept open for the child's life
        step(f"starting {name} on 127.0.0.1:{port}")
        servers[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), port, path)
    for name, (process, port, _) in servers.items():
        wait_ready(port, process, name)
    return servers


def post(conn: http.client.HTTPConnection, path: str, body: bytes) -> bytes:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise SystemExit(f"{path} answered {response.status}: {data[:300]!r}")
    return data


def client(port: int, path: str, body: bytes, seconds: float, queue: Any) -> None:
    """One keep-alive connection, requests back to back for ``seconds``; its latencies (s) go to ``queue``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies = []
    for _ in range(20):  # warm the connection and the server's code paths
        post(conn, path, body)
    stop = time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        if started >= stop:
            break
        post(conn, path, body)
        latencies.append(time.perf_counter() - started)
    conn.close()
    queue.put(latencies)


def measure(port: int, path: str, body: bytes, *, clients: int, seconds: float) -> dict[str, Any]:
    """One round: ``clients`` processes for ``seconds``; every request's latency."""
    queue: Any = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=client, args=(port, path, body, seconds, queue)) for _ in range(clients)]
    for w in workers:
        w.start()
    latencies = [x for _ in workers for x in queue.get()]
    for w in workers:
        w.join()
    return {"latencies": latencies}


def combine(rounds: list[dict[str, Any]], seconds: float) -> dict[str, float]:
    """The rounds of one server as one figure: requests per second over the whole time, latency quantiles."""
    latencies = sorted(x for r in rounds for x in r["latencies"])
    quantile = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "p50_ms": quantile[49] * 1000,
        "p99_ms": quantile[98] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time per server and body size")
    parser.add_argument("--clients", type=int, default=4, help="client processes, one connection each")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds the seconds are split into")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        folder = Path(tmp)
        step("training the model, recording it in the ledger, saving it for MLflow")
        url, mlflow_dir, rows = build(folder)
        servers = start_servers(url, mlflow_dir, folder)
        try:
            bodies = {
                n: json.dumps({"dataframe_split": {"columns": [f"f{i}" for i in range(FEATURES)], "data": rows[:n]}})
                for n in (1, 100)
            }
            answers = {}
            for name, (_, port, path) in servers.items():
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                answers[name] = json.loads(post(conn, path, bodies[100].encode()))["predictions"]
                conn.close()
            same = len(set(map(json.dumps, answers.values()))) == 1
            step(f"both servers give the same 100 predictions: {same}")
            # Alternating short rounds, so a change in the machine's load falls on both servers alike.
            results = []
            slice_s = args.seconds / args.rounds
            for n, body in bodies.items():
                step(f"{n}-row requests: {args.rounds} rounds of {slice_s:.1f} s per server, {args.clients} clients")
                rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
                for _ in range(args.rounds):
                    for name, (_, port, path) in servers.items():
                        rounds[name].append(measure(port, path, body.encode(), clients=args.clients, seconds=slice_s))
                for name, parts in rounds.items():
                    results.append((name, n, combine(parts, args.seconds)))
        finally:
            for process, _, _ in servers.values():
                process.terminate()
            for process, _, _ in servers.values():
                process.wait(timeout=60)
        log = (folder / "modeltrail.log").read_text(errors="replace")
    print(f"\nServing a scikit-learn random forest (50 trees, depth 8, {FEATURES} features), one uvicorn worker each,")
    print(f"{args.clients} keep-alive client processes on 127.0.0.1, {args.seconds:.0f} s per line in", end=" ")
    print(f"{args.rounds} alternating rounds;", end=" ")
    print(f"same predictions: {same}\n")
    print_columns(
        ["rows/request", "server", "requests/s", "p50 ms", "p99 ms", "requests"],
        [
            (str(n), name, f"{r['rps']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['requests']:,}")
            for name, n, r in results
        ],
        ["<", "<", ">", ">", ">", ">"],
        gap_between_groups=True,
    )
    errors = [line for line in log.splitlines() if re.search(r"error|Traceback", line, re.I)]
    if errors:
        print("\nmodeltrail serve logged:", *errors[:5], sep="\n  ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
