"""``modeltrail serve`` as users run it: a real process on a free port, real HTTP through httpx.

Deploys and rollbacks made by another client are followed without a restart (the version header and
the predictions change), SIGTERM ends the instance ``stopped``, SIGKILL leaves it reading ``lost``, a
database outage does not stop the answers, and the production metrics it wrote count exactly the
requests sent. Waits are bounded polls; no test asserts a duration.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modeltrail

pytestmark = pytest.mark.slow

X = np.random.default_rng(0).normal(size=(200, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)
#: A row version 1 classifies 1 and version 2 (trained on flipped labels) classifies 0.
ROW = [2.0, 2.0, 0.0, 0.0]
HEADER = "X-Modeltrail-Version"
WAIT_S = 60.0


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def build_ledger(url: str, folder: Path) -> None:
    """Model ``churn`` with version 1 and version 2 (opposite answers on ROW); version 1 in production."""
    with modeltrail.Tracker(url) as tracker:
        for number, labels in ((1, Y), (2, 1 - Y)):
            path = folder / f"churn-{number}.joblib"
            joblib.dump(LogisticRegression().fit(X, labels), path)
            with tracker.training("churn", framework="sklearn", model_type="classifier") as run:
                run.log_artifact(path)
        tracker.deploy("churn", 1, "production", reason="first release")


class Served:
    """A ``modeltrail serve`` child process and an HTTP client on its address."""

    def __init__(self, url: str, *extra: str, env: str = "production") -> None:
        command = [sys.executable, "-m", "modeltrail.cli", "--uri", url, "serve", "churn", "--env", env, "--port", "0"]
        command += ["--heartbeat", "0.3", "--metrics-interval", "0.5", *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the first line names the address (or the process ended)
        found = re.search(r"on (http://\S+) as instance (\d+)", line)
        if found is None:
            self.process.wait(timeout=WAIT_S)
            pytest.fail(f"serve did not start: {line!r} {self.process.stderr.read() if self.process.stderr else ''}")
        self.base, self.instance_id = found.group(1), int(found.group(2))
        self.client = httpx.Client(base_url=self.base, timeout=WAIT_S)

    def predict(self, rows: Any, **params: Any) -> httpx.Response:
        return self.client.post("/predict", json=rows, params=params)

    def version(self) -> int:
        return int(self.client.get("/version").headers[HEADER])

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=WAIT_S)

    def stderr(self) -> str:
        return self.process.stderr.read() if self.process.stderr else ""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(url: str, *extra: str, env: str = "production") -> Served:
        served = Served(url, *extra, env=env)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait()


def instance(url: str, instance_id: int) -> modeltrail.ServingInstanceRecord:
    with modeltrail.Tracker(url) as tracker:
        return tracker.serving_instance(instance_id)


def production_totals(url: str) -> dict[tuple[int, str], float]:
    """Sum of each serving counter per version, as the ledger holds them."""
    totals: dict[tuple[int, str], float] = {}
    with modeltrail.Tracker(url) as tracker:
        for point in tracker.production_metrics("churn", environment="production"):
            if point.metric in ("serving.requests", "serving.errors", "serving.rows"):
                key = (point.version, point.metric)
                totals[key] = totals.get(key, 0.0) + point.value
    return totals


def test_serve_follows_deploys_and_rollbacks_and_records_itself(
    db_url: str, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    build_ledger(db_url, tmp_path)
    server = serve(db_url)
    answer = server.predict([ROW])
    assert answer.status_code == 200 and answer.headers[HEADER] == "1"
    assert answer.json() == {"predictions": [1]}
    assert server.predict([[1.0, 2.0]]).status_code == 422  # one error, counted
    for _ in range(4):
        assert server.predict({"columns": ["a", "b", "c", "d"], "data": [ROW, ROW]}).json()["predictions"] == [1, 1]
    seen = instance(db_url, server.instance_id)
    assert (seen.state, seen.version, seen.model, seen.environment, seen.port) == (
        "serving",
        1,
        "churn",
        "production",
        int(server.base.rsplit(":", 1)[1]),
    )
    assert seen.pid == server.process.pid

    with modeltrail.Tracker(db_url) as tracker:
        tracker.deploy("churn", 2, "production", reason="retrained")
    wait_for(lambda: server.version() == 2, "the server to switch to version 2")
    answer = server.predict([ROW])
    assert answer.headers[HEADER] == "2" and answer.json() == {"predictions": [0]}
    for _ in range(2):
        server.predict([ROW, ROW, ROW])

    with modeltrail.Tracker(db_url) as tracker:
        tracker.rollback("churn", "production", reason="worse in production")
    wait_for(lambda: server.version() == 1, "the server to switch back to version 1")
    assert server.predict([ROW]).json() == {"predictions": [1]}

    with modeltrail.Tracker(db_url) as tracker:
        switches = tracker.audit(action="serving.switch", entity="serving_instance", entity_id=server.instance_id)
        assert [(e.before["version"], e.after["version"]) for e in reversed(switches)] == [(1, 2), (2, 1)]
        assert tracker.serving_instances("churn", state="serving")[0].id == server.instance_id

    assert server.stop(signal.SIGTERM) == 0
    ended = instance(db_url, server.instance_id)
    assert (ended.state, ended.end_reason, ended.version) == ("stopped", "SIGTERM", 1)
    assert ended.ended_at is not None
    # Requests sent: version 1: 1 + 1 refused + 4 (8 rows), then 1; version 2: 1 + 2 (7 rows). All written.
    assert production_totals(db_url) == {
        (1, "serving.requests"): 7.0,
        (1, "serving.errors"): 1.0,
        (1, "serving.rows"): 10.0,
        (2, "serving.requests"): 3.0,
        (2, "serving.errors"): 0.0,
        (2, "serving.rows"): 7.0,
    }
    with modeltrail.Tracker(db_url) as tracker:
        shares = {p.metric: p.value for p in tracker.production_metrics("churn", version=2)}
        assert shares["serving.class_share.0"] == 1.0 and shares["serving.latency_p99_ms"] > 0
        assert [e.action for e in tracker.audit(action="serving.*", entity_id=server.instance_id)] == [
            "serving.stop", "serving.switch", "serving.switch", "serving.start"
        ]  # fmt: skip


def test_sigkill_leaves_the_instance_lost(db_url: str, tmp_path: Path, serve: Callable[..., Served]) -> None:
    build_ledger(db_url, tmp_path)
    server = serve(db_url)
    assert server.predict([ROW]).status_code == 200
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    lost = wait_for(
        lambda: (i := instance(db_url, server.instance_id)).state == "lost" and i, "the instance to read lost"
    )
    assert lost.ended_at is None and lost.lost_after_s >= 2.0
    with modeltrail.Tracker(db_url) as tracker:
        assert [i.id for i in tracker.serving_instances("churn", state="lost")] == [server.instance_id]
        assert tracker.serving_instances("churn", state="serving") == []
    shown = subprocess.run(
        [sys.executable, "-m", "modeltrail.cli", "--uri", db_url, "instances", "churn"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert re.search(rf"^{server.instance_id}\s+churn\s+production\s+1\s+lost\s", shown.stdout, re.M), shown.stdout


def test_serving_survives_a_database_outage(mysql_url: str, tmp_path: Path, serve: Callable[..., Served]) -> None:
    from sqlalchemy.engine import make_url
    from tests.proxy import Proxy

    build_ledger(mysql_url, tmp_path)
    real = make_url(mysql_url)
    proxy = Proxy(real.host or "127.0.0.1", real.port or 3306)
    through = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    server = serve(through)
    try:
        assert server.predict([ROW]).status_code == 200
        proxy.cut()
        wait_for(lambda: server.client.get("/health").json()["database"] == "unreachable", "the outage to be seen")
        for _ in range(5):
            answer = server.predict([ROW])
            assert answer.status_code == 200 and answer.json() == {"predictions": [1]}
        proxy.restore()
        wait_for(lambda: server.client.get("/health").json()["database"] == "ok", "the ledger to be reachable again")
        wait_for(lambda: production_totals(mysql_url).get((1, "serving.requests")) == 6.0, "all 6 requests written")
        assert server.stop() == 0
    finally:
        proxy.cut()
    assert instance(mysql_url, server.instance_id).state == "stopped"
    assert production_totals(mysql_url)[(1, "serving.requests")] == 6.0


def test_serve_refuses_what_it_cannot_serve(sqlite_url: str, tmp_path: Path) -> None:
    build_ledger(sqlite_url, tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "modeltrail.cli", "--uri", sqlite_url, "serve", "churn", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=WAIT_S)

    nowhere = run("--env", "staging", "--port", "0")
    assert nowhere.returncode == 2
    assert nowhere.stderr.startswith("modeltrail: error: nothing of model 'churn' is deployed in 'staging'")
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = run("--env", "production", "--port", str(busy.getsockname()[1]))
    assert taken.returncode == 2 and "cannot listen on 127.0.0.1:" in taken.stderr
    bad = run("--env", "production", "--heartbeat", "0")
    assert bad.returncode == 2 and "heartbeat interval must be a number of seconds above 0" in bad.stderr
    with modeltrail.Tracker(sqlite_url) as tracker:
        assert tracker.serving_instances() == []  # nothing refused was recorded
