"""The model server's HTTP answers and its metrics, in process (no database): input shapes, errors,
the version header, and what a window of requests becomes as production metrics. The end-to-end
behaviour (a real process, deploys, rollbacks, outages) is in ``test_serving.py``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression

import modeltrail
from modeltrail.serve.app import VERSION_HEADER, Holder, Served, create_app
from modeltrail.serve.meter import LATENCY_SAMPLES, Meter, Window

X = np.random.default_rng(1).normal(size=(120, 3))
Y = (X[:, 0] > 0).astype(int)
COLUMNS = ["age", "tenure", "spend"]


def client_for(model: Any, *, version: int = 7, deployment_id: int = 3) -> tuple[TestClient, Meter, Holder]:
    holder = Holder(
        Served.of(model, name="churn", environment="production", version=version, deployment_id=deployment_id)
    )
    meter = Meter()
    return TestClient(create_app(holder, meter)), meter, holder


@pytest.fixture
def plain() -> tuple[TestClient, Meter, Holder]:
    return client_for(LogisticRegression().fit(X, Y))


@pytest.fixture
def named() -> tuple[TestClient, Meter, Holder]:
    """A model fitted on a DataFrame: it knows its columns by name."""
    return client_for(LogisticRegression().fit(pd.DataFrame(X, columns=COLUMNS), Y))


def test_every_accepted_shape_gives_the_models_own_predictions(named: tuple[TestClient, Meter, Holder]) -> None:
    client, meter, holder = named
    model = holder.current.model
    rows = X[:5].tolist()
    expected = model.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()
    records = [dict(zip(COLUMNS, r, strict=True)) for r in rows]
    shuffled = {"columns": ["spend", "age", "tenure"], "data": [[r[2], r[0], r[1]] for r in rows]}
    for body in (
        rows,
        records,
        {"columns": COLUMNS, "data": rows},
        shuffled,  # named columns in another order are put in the fitted order
        {"dataframe_split": {"columns": COLUMNS, "data": rows}},
        {"dataframe_records": records},
        {"inputs": rows},
    ):
        answer = client.post("/predict", json=body)
        assert answer.status_code == 200, (body, answer.text)
        assert answer.json() == {"predictions": expected}
        assert answer.headers[VERSION_HEADER] == "7"
    probabilities = client.post("/predict", params={"proba": "true"}, json=rows).json()
    assert probabilities["probabilities"] == model.predict_proba(pd.DataFrame(rows, columns=COLUMNS)).tolist()
    assert probabilities["classes"] == [0, 1] and probabilities["predictions"] == expected
    assert (
        client.post("/predict", json={"inputs": rows, "proba": True}).json()["probabilities"]
        == probabilities["probabilities"]
    )
    window = meter.take()[3]
    assert (window.requests, window.errors, window.rows) == (9, 0, 45)
    assert sum(window.classes.values()) == 45


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "the body is not JSON"),
        (b"[]", 400, "no rows to predict"),
        (b'{"rows": [[1, 2, 3]]}', 400, "expected rows"),
        (b"[[1, 2, 3], [1, 2]]", 400, "row 1 has 2 values, expected 3 values, as row 0"),
        (b"[1, 2, 3]", 400, "row 0 must be a list or an object"),
        (b'[{"a": 1, "b": 2, "c": 3}, {"a": 1}]', 400, "row 1 does not have the same fields as row 0"),
        (b'{"columns": ["a", "b", "c"], "data": [[1, 2]]}', 400, "row 0 has 2 values, expected 3 columns"),
        (b"[[1, 2]]", 422, "the model refused the input: X has 2 features"),
        (b'[["x", "y", "z"]]', 422, "the model refused the input"),
    ],
)
def test_bad_input_is_a_clear_json_error(
    plain: tuple[TestClient, Meter, Holder], body: bytes, status: int, message: str
) -> None:
    client, meter, _ = plain
    answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.json()["error"].startswith(message) and answer.json()["status"] == status
    assert answer.headers[VERSION_HEADER] == "7"
    window = meter.take()[3]
    assert (window.requests, window.errors) == (1, 1)


def test_named_columns_missing_and_no_predict_proba_are_refused(named: tuple[TestClient, Meter, Holder]) -> None:
    client, _, _ = named
    answer = client.post("/predict", json=[{"age": 1, "tenure": 2}])
    assert answer.status_code == 422 and answer.json()["error"] == "missing column: spend"
    answer = client.post("/predict", json=[[1, 2]])
    assert (
        answer.status_code == 422
        and answer.json()["error"] == "rows have 2 values, the model takes 3: age, tenure, spend"
    )
    regression, _, _ = client_for(LinearRegression().fit(X, X[:, 0]))
    answer = regression.post("/predict?proba=1", json=[[1, 2, 3]])
    assert answer.status_code == 422 and answer.json()["error"] == "version 7 of 'churn' has no predict_proba"


def test_health_version_and_unknown_paths_name_the_served_version(plain: tuple[TestClient, Meter, Holder]) -> None:
    client, _, holder = plain
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["version"] == 7 and health.json()["database"] == "ok"
    about = client.get("/version").json()
    assert (about["model"], about["environment"], about["version"], about["deployment_id"]) == (
        "churn", "production", 7, 3
    )  # fmt: skip
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.headers[VERSION_HEADER] == "7"
    assert client.get("/predict").status_code == 405
    holder.current = Served.of(holder.current.model, name="churn", environment="production", version=8, deployment_id=4)
    assert client.get("/version").headers[VERSION_HEADER] == "8"  # a swap is seen by the next request


def test_a_window_becomes_production_metrics() -> None:
    meter = Meter()
    for labels in (["a", "b"], ["a"], ["a"]):
        meter.answered(1, 0.010, np.array(labels), classifier=True)
    meter.failed(1)
    for values in ([1.0, 3.0], [5.0]):
        meter.answered(2, 0.020, np.array(values), classifier=False)
    windows = meter.take()
    assert meter.take() == {}
    classes = windows[1].metrics()
    assert classes["serving.requests"] == 4 and classes["serving.errors"] == 1 and classes["serving.rows"] == 4
    assert classes["serving.class_share.a"] == 0.75 and classes["serving.class_share.b"] == 0.25
    assert classes["serving.latency_p50_ms"] == pytest.approx(10.0)
    numbers = windows[2].metrics()
    assert numbers["serving.prediction_mean"] == pytest.approx(3.0)
    assert numbers["serving.prediction_std"] == pytest.approx(math.sqrt(8 / 3))
    assert "serving.class_share.a" not in numbers
    from modeltrail._values import check_metrics  # the names are valid metric keys, by the ledger's own rule

    assert check_metrics(classes) == classes and check_metrics(numbers) == numbers
    assert Window().metrics() == {}


def test_windows_the_ledger_did_not_take_are_merged_not_lost() -> None:
    meter = Meter()
    meter.answered(1, 0.001, np.array([0]), classifier=True)
    taken = meter.take()
    meter.answered(1, 0.002, np.array([1, 1]), classifier=True)
    meter.put_back(taken)
    window = meter.take()[1]
    assert (window.requests, window.rows, dict(window.classes)) == (2, 3, {0: 1, 1: 2})
    many = Window()
    for n in range(LATENCY_SAMPLES + 500):
        many.add_latency(n / 1000)
    assert len(many.latencies) == LATENCY_SAMPLES and many.timed == LATENCY_SAMPLES + 500


def test_a_regressor_answers_numbers() -> None:
    client, meter, _ = client_for(DummyRegressor(constant=2.5, strategy="constant").fit(X, X[:, 0]))
    assert client.post("/predict", json=[[0, 0, 0], [1, 1, 1]]).json() == {"predictions": [2.5, 2.5]}
    assert meter.take()[3].metrics()["serving.prediction_mean"] == 2.5


def test_the_port_is_bound_and_listening_before_the_server_runs() -> None:
    """Bound first so a busy port fails before anything is recorded; listening at once so an early client
    waits instead of being refused; said to be TCP so asyncio turns Nagle off (else ~40 ms per answer)."""
    import socket

    from modeltrail.serve.runner import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        with socket.create_connection(sock.getsockname(), timeout=5):
            pass
        with pytest.raises(modeltrail.ConfigurationError, match=r"cannot listen on 127\.0\.0\.1:"):
            bind("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()
