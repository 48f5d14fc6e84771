"""The dashboard over HTTP, without a browser: pages, the JSON API, read-only, tokens, escaping, speed.

``seed_ledger`` builds the small ledger the browser test drives too: a model with three versions,
metric histories, a deployment replaced and rolled back, and a model whose name is an XSS attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason='the dashboard needs the ui extra: pip install "modeltrail[ui]"')

from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

import modeltrail
from modeltrail import _schema as schema
from modeltrail._errors import ConfigurationError
from modeltrail.ui import app as ui_app
from modeltrail.ui import server

CHURN = "churn-rf"
EVIL = "<script>alert(1)</script>"
EVIL_PARAM = "<img src=x onerror=alert(2)>"
EVIL_METRIC = "</script><b>acc"
STEPS = 10
PARAMS = [{"lr": 0.1, "max_depth": 4}, {"lr": 0.05, "max_depth": 4}, {"lr": 0.05, "max_depth": 8}]
TOKEN = "s3cret-token-for-tests"


def val_auc(version: int, step: int) -> float:
    return round(0.80 + 0.01 * step + 0.02 * (version - 1), 6)


def seed_ledger(url: str) -> dict[str, Any]:
    """Two models, versions with histories, a deploy, a redeploy rolled back; returns their ids."""
    tracker = modeltrail.Tracker(url)
    dataset = modeltrail.Dataset(name="churn-2026-11", digest="ab" * 32, n_rows=1000, n_features=12)
    for version, params in enumerate(PARAMS, start=1):
        with (
            tracker.training(
                CHURN,
                framework="sklearn",
                model_type="classifier",
                params=params,
                dataset=dataset,
                tags={"team": "risk"},
                seeds={"numpy": 42},
            ) as run,
            run.stage("fit"),
        ):
            for step in range(STEPS):
                run.log_metrics({"val_auc": val_auc(version, step), "loss": 1.0 / (step + version)}, step=step)
    with tracker.training(EVIL, framework="torch", params={"note": EVIL_PARAM}) as run:
        run.log_metric(EVIL_METRIC, 0.5, step=0)
        run.log_metric(EVIL_METRIC, math.nan, step=1)
    tracker.flush()
    tracker.deploy(CHURN, 1, "production", reason="first release")
    tracker.deploy(CHURN, 2, "production", reason="better auc")
    tracker.rollback(CHURN, "production", reason="latency regression")
    tracker.deploy(CHURN, 3, "staging")
    facts = {
        "churn_id": tracker.model(CHURN).id,
        "evil_id": tracker.model(EVIL).id,
        "trainings": {v.number: v.training_id for v in tracker.versions(CHURN)},
        "evil_training": tracker.versions(EVIL)[0].training_id,
    }
    tracker.close()
    return facts


@pytest.fixture
def seeded(db_url: str) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    facts = seed_ledger(db_url)
    with TestClient(ui_app.create_app(db_url)) as client:
        yield client, facts


@pytest.fixture
def sqlite_seeded(sqlite_url: str) -> Iterator[tuple[TestClient, dict[str, Any], str]]:
    facts = seed_ledger(sqlite_url)
    with TestClient(ui_app.create_app(sqlite_url)) as client:
        yield client, facts, sqlite_url


def text_of(html: str) -> str:
    """The visible text of a page, roughly: tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def urls(facts: dict[str, Any]) -> list[str]:
    """Every page and API route, each with real arguments."""
    m, t = facts["churn_id"], facts["trainings"][1]
    return [
        "/",
        "/?framework=sklearn&tag=team%3Drisk&name=churn",
        f"/models/{m}",
        f"/models/{m}?metric=loss&mode=min&by=last",
        f"/models/{m}/compare?a=1&b=2",
        f"/models/{m}/compare",
        f"/models/{m}/charts?metric=val_auc&v=1,2",
        f"/models/{m}/charts",
        f"/models/{facts['evil_id']}",
        f"/trainings/{t}",
        f"/trainings/{facts['evil_training']}",
        "/audit",
        "/audit?action=deployment.*&since=2000-01-01",
        "/api",
        "/openapi.json",
        "/api/models",
        f"/api/models/{CHURN}",
        f"/api/models/{CHURN}/versions",
        f"/api/models/{CHURN}/leaderboard?metric=val_auc",
        f"/api/models/{CHURN}/compare?a=1&b=2",
        f"/api/models/{CHURN}/metric-by-version?metric=loss",
        f"/api/models/{CHURN}/curves?metric=loss&version=1&version=2",
        f"/api/models/{CHURN}/deployments",
        f"/api/trainings/{t}",
        f"/api/trainings/{t}/history",
        "/api/audit",
        "/static/chart.js",
        "/static/style.css",
    ]


# ---------------------------------------------------------------- every backend
def test_every_page_and_endpoint_answers_and_browsing_writes_nothing(
    row_counts: Callable[..., Any], seeded: tuple[TestClient, dict[str, Any]], db_url: str
) -> None:
    client, facts = seeded
    before = row_counts(db_url)
    for url in urls(facts):
        response = client.get(url)
        assert response.status_code == 200, (url, response.text[:300])
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert row_counts(db_url) == before


def test_model_page_shows_versions_serving_leaderboard_and_timeline(seeded: tuple[TestClient, dict[str, Any]]) -> None:
    client, facts = seeded
    html = client.get(f"/models/{facts['churn_id']}?metric=val_auc").text
    page = text_of(html)
    versions = html.split('id="versions-table"')[1].split("</table>")[0]
    assert re.findall(r'/trainings/\d+">v(\d)</a>', versions) == ["1", "2", "3"]
    assert "production v1" in page and "staging v3" in page  # serving now, after the rollback
    # The leaderboard ranks v3 first by val_auc (0.93), then v2, then v1.
    board = html.split('id="leaderboard-table"')[1].split("</table>")[0]
    assert re.findall(r">v(\d)</a>", board) == ["3", "2", "1"]
    assert "0.93" in board
    # The production timeline: deploy v1, deploy v2 (rolled back), rollback to v1 (serving).
    timeline = html.split('data-environment="production"')[1].split("</ol>")[0]
    assert timeline.count("badge-rollback") == 1 and timeline.count("rolled back") == 1
    assert "latency regression" in timeline


def test_compare_page_shows_param_changes_and_metric_deltas(seeded: tuple[TestClient, dict[str, Any]]) -> None:
    client, facts = seeded
    html = client.get(f"/models/{facts['churn_id']}/compare?a=1&b=3").text
    params = text_of(html.split('id="params-diff"')[1].split("</table>")[0])
    assert "lr changed 0.1 0.05" in params and "max_depth changed 4 8" in params
    auc = text_of(html.split('data-metric="val_auc"')[1].split("</tr>")[0])
    assert "+0.04" in auc  # final 0.89 -> 0.93


# ---------------------------------------------------------------- SQLite only
def test_json_api_serves_scripts(sqlite_seeded: tuple[TestClient, dict[str, Any], str]) -> None:
    client, facts, _ = sqlite_seeded
    models = {m["name"]: m for m in client.get("/api/models").json()}
    assert models[CHURN]["environments"] == {"production": 1, "staging": 3}
    assert models[CHURN]["latest_version"] == 3
    assert [m["name"] for m in client.get("/api/models", params={"tag": "team=risk"}).json()] == [CHURN]

    board = client.get(f"/api/models/{CHURN}/leaderboard", params={"metric": "val_auc", "limit": 2}).json()
    assert [(e["rank"], e["version"], e["value"]) for e in board] == [(1, 3, 0.93), (2, 2, 0.91)]
    loss = client.get(f"/api/models/{CHURN}/leaderboard", params={"metric": "loss"}).json()
    assert loss[0]["version"] == 3  # lower is better for a loss, by default

    comparison = client.get(f"/api/models/{CHURN}/compare", params={"a": 1, "b": 3}).json()
    assert comparison["params"]["changed"]["lr"] == {"old": 0.1, "new": 0.05}
    assert {m["key"]: round(m["last_delta"], 6) for m in comparison["metrics"]}["val_auc"] == 0.04

    curves = client.get(f"/api/models/{CHURN}/curves", params={"metric": "val_auc", "version": "1,3"}).json()
    assert [(c["version"], len(c["points"])) for c in curves] == [(1, STEPS), (3, STEPS)]
    assert curves[1]["points"][-1] == [STEPS - 1, val_auc(3, STEPS - 1)]

    across = client.get(f"/api/models/{CHURN}/metric-by-version", params={"metric": "val_auc"}).json()
    assert [(m["version"], m["last"], m["environments"]) for m in across] == [
        (1, 0.89, ["production"]),
        (2, 0.91, []),
        (3, 0.93, ["staging"]),
    ]
    timeline = client.get(f"/api/models/{CHURN}/deployments", params={"environment": "production"}).json()
    assert [(d["version"], d["action"], d["status"]) for d in timeline] == [
        (1, "deploy", "superseded"),
        (2, "deploy", "rolled_back"),
        (1, "rollback", "active"),
    ]
    training = client.get(f"/api/trainings/{facts['trainings'][2]}").json()
    assert training["params"] == PARAMS[1] and training["dataset"]["name"] == "churn-2026-11"
    assert [s["name"] for s in training["stages"]] == ["fit"]
    history = client.get(f"/api/trainings/{facts['trainings'][2]}/history", params={"metric": "loss"}).json()
    assert history[0]["points"][:2] == [[0, 0.5], [1, 1 / 3]]
    events = client.get("/api/audit", params={"action": "deployment.*"}).json()
    actions = ["deployment.deploy", "deployment.rollback", "deployment.deploy", "deployment.deploy"]
    assert [e["action"] for e in events] == actions  # newest first

    # A name is matched whole, "/" and "<" included; an id works too; NaN is JSON null.
    evil = client.get(f"/api/models/{EVIL}").json()
    assert evil["model"]["name"] == EVIL
    assert client.get(f"/api/models/{facts['evil_id']}").json()["model"]["name"] == EVIL
    assert [v["number"] for v in client.get(f"/api/models/{EVIL}/versions").json()] == [1]  # "/" in a name
    assert client.get(f"/api/trainings/{facts['evil_training']}/history").json()[0]["points"] == [[0, 0.5], [1, None]]
    assert client.get("/api/models/no-such-model").status_code == 404
    assert client.get(f"/api/models/{CHURN}/compare", params={"a": 1, "b": 99}).status_code == 404
    assert client.get(f"/api/models/{CHURN}/compare", params={"a": "x", "b": 2}).status_code == 422


def test_openapi_documents_every_api_route_with_schemas(sqlite_seeded: tuple[TestClient, dict[str, Any], str]) -> None:
    client, _, _ = sqlite_seeded
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/models",
        "/api/models/{model}",
        "/api/models/{model}/versions",
        "/api/models/{model}/leaderboard",
        "/api/models/{model}/compare",
        "/api/models/{model}/metric-by-version",
        "/api/models/{model}/curves",
        "/api/models/{model}/deployments",
        "/api/trainings/{training_id}",
        "/api/trainings/{training_id}/history",
        "/api/audit",
    ):
        assert set(paths[path]) == {"get"}, path
        schema_ref = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in schema_ref or "$ref" in schema_ref.get("items", {}), path
    assert not [p for p in paths if not p.startswith("/api/")]  # pages are not API
    components = spec["components"]["schemas"]
    for name in ("ModelSummary", "ModelPage", "LeaderboardEntry", "Comparison", "MetricDelta", "Series", "AuditRecord"):
        assert name in components, name
    assert "metric" in {p["name"] for p in paths["/api/models/{model}/leaderboard"]["get"]["parameters"]}
    # The API page lists the same routes, readable without a CDN.
    assert "/api/models/{model}/leaderboard" in client.get("/api").text


def test_no_route_takes_anything_but_get(
    row_counts: Callable[..., Any], sqlite_seeded: tuple[TestClient, dict[str, Any], str]
) -> None:
    client, facts, url = sqlite_seeded
    before = row_counts(url)
    methods = set()
    for route in client.app.routes:
        methods |= getattr(route, "methods", None) or set()
    assert methods <= {"GET", "HEAD"}
    for target in urls(facts):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            response = client.request(method, target, json={"name": "x"})
            assert response.status_code == 405, (method, target, response.status_code)
    head = client.head(f"/models/{facts['churn_id']}")
    assert head.status_code == 200 and head.content == b""
    assert row_counts(url) == before


def test_user_data_is_escaped(sqlite_seeded: tuple[TestClient, dict[str, Any], str]) -> None:
    client, facts, _ = sqlite_seeded
    pages = [
        "/",
        f"/models/{facts['evil_id']}",
        f"/models/{facts['evil_id']}/charts",
        f"/trainings/{facts['evil_training']}",
        "/audit",
    ]
    for url in pages:
        html = client.get(url).text
        assert EVIL not in html and EVIL_PARAM not in html, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/").text
    training = client.get(f"/trainings/{facts['evil_training']}").text
    assert "&lt;img src=x onerror=alert(2)&gt;" in training
    assert "NaN" in text_of(training)  # a final NaN reads as NaN
    # Chart data embedded in a page cannot close its <script> element.
    charts = client.get(f"/models/{facts['evil_id']}/charts").text
    assert "\\u003c/script\\u003e\\u003cb\\u003eacc" in charts


def test_missing_things_are_404_pages(sqlite_seeded: tuple[TestClient, dict[str, Any], str]) -> None:
    client, facts, _ = sqlite_seeded
    for url in ("/models/999", f"/models/{facts['churn_id']}/compare?a=1&b=42", "/trainings/999", "/no/such/page"):
        response = client.get(url, headers={"accept": "text/html"})
        assert response.status_code == 404 and "<h1" in response.text, url
    response = client.get("/audit?since=yesterday")
    assert response.status_code == 400 and "YYYY-MM-DD" in response.text
    response = client.get(f"/models/{facts['churn_id']}/charts?v=one")
    assert response.status_code == 400 and "integer" in response.text
    too_many = ",".join(str(n) for n in range(1, 20))
    assert client.get(f"/api/models/{CHURN}/curves", params={"metric": "loss", "version": too_many}).status_code == 400


def test_long_histories_are_thinned_with_the_last_point_kept(sqlite_url: str) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    with tracker.training("long", params={"a": 1}) as run:
        for step in range(1001):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
    tracker.flush()
    training_id = tracker.versions("long")[0].training_id
    with TestClient(ui_app.create_app(sqlite_url)) as client:
        (series,) = client.get(f"/api/trainings/{training_id}/history", params={"max_points": 100}).json()
        # 48 buckets of 21 points (49 allowed): each gives its highest (first) and lowest (last) point.
        assert series["total"] == 1001 and series["stride"] == 21
        steps = [p[0] for p in series["points"]]
        assert steps[:4] == [0, 20, 21, 41] and steps[-1] == 1000 and len(steps) == 96
        assert all(value == 1.0 / (step + 1) for step, value in series["points"])
        (whole,) = client.get("/api/models/long/curves", params={"metric": "loss", "max_points": 0}).json()
        assert len(whole["points"]) == 1001
        page = text_of(client.get(f"/trainings/{training_id}").text)
        (default,) = client.get(f"/api/trainings/{training_id}/history").json()
        assert 500 < len(default["points"]) <= 1000  # the default: 1,000 points at most
        assert f"loss ({len(default['points'])} of 1001 points)" in page  # the page's charts are downsampled too
    tracker.close()


# ---------------------------------------------------------------- access
def test_non_loopback_needs_a_token(sqlite_seeded: tuple[TestClient, dict[str, Any], str], monkeypatch) -> None:
    _, _, url = sqlite_seeded
    monkeypatch.delenv(server.ENV_TOKEN, raising=False)
    for host in ("0.0.0.0", "::", "192.168.1.20", "dashboard.internal"):
        with pytest.raises(ConfigurationError, match="without a token"):
            server.serve(url, host=host, port=0)
    assert server.is_loopback("127.0.0.1") and server.is_loopback("::1") and server.is_loopback("localhost")
    assert not server.is_loopback("0.0.0.0")
    assert server.make_server(url, host="0.0.0.0", port=0, token=TOKEN).config.host == "0.0.0.0"
    monkeypatch.setenv(server.ENV_TOKEN, TOKEN)
    app = server.make_server(url, host="0.0.0.0", port=0).config.app
    assert TestClient(app).get("/api/models").status_code == 401


def test_with_a_token_every_request_needs_it(sqlite_seeded: tuple[TestClient, dict[str, Any], str]) -> None:
    _, facts, url = sqlite_seeded
    client = TestClient(ui_app.create_app(url, token=TOKEN))
    for target in (*urls(facts), "/models/999"):
        response = client.get(target)
        assert response.status_code == 401, target
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/api/models", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/?token=wrong").status_code == 401
    html = client.get("/", headers={"accept": "text/html"})
    assert html.status_code == 401 and "?token=" in html.text

    # A browser opens ?token= once: a cookie, and the same page without the token in the address.
    first = client.get(f"/models/{facts['churn_id']}?metric=loss&token={TOKEN}", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == f"/models/{facts['churn_id']}?metric=loss"
    assert TOKEN not in first.headers["set-cookie"]
    assert client.get(f"/models/{facts['churn_id']}").status_code == 200  # the cookie carries on
    client.cookies.clear()
    assert client.get(f"/models/{facts['churn_id']}").status_code == 401


def test_loopback_server_answers_only_loopback_host_names(
    sqlite_seeded: tuple[TestClient, dict[str, Any], str],
) -> None:
    _, _, url = sqlite_seeded
    app = server.make_server(url, host="127.0.0.1", port=0).config.app
    assert TestClient(app, base_url="http://127.0.0.1:8765").get("/").status_code == 200
    assert TestClient(app, base_url="http://localhost:8765").get("/").status_code == 200
    assert TestClient(app, base_url="http://attacker.example").get("/").status_code == 400  # DNS rebinding


def test_access_log_masks_the_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s"', ("1.2.3.4", "GET", f"/?a=1&token={TOKEN}"), None
    )
    server.RedactToken().filter(record)
    assert TOKEN not in record.getMessage() and "token=***" in record.getMessage()


def test_the_dashboard_never_creates_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ledger.db"
    with pytest.raises(ConfigurationError, match="no modeltrail database"):
        ui_app.create_app(f"sqlite:///{missing}")
    assert not missing.parent.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(modeltrail.SchemaError):
        ui_app.create_app(f"sqlite:///{empty}")
    with pytest.raises(ConfigurationError, match="empty"):
        ui_app.create_app(f"sqlite:///{empty}", token=" ")


# ---------------------------------------------------------------- speed
def bulk_versions(url: str, model: str, count: int) -> int:
    """``count`` versions of ``model`` written in bulk (a loop of real trainings takes ~15 ms each).

    Two real trainings make the model and its metric keys; the rest copy their shape row by row:
    a training with params and metric summaries, and a version whose parent is the one before.
    """
    tracker = modeltrail.Tracker(url)
    for version in (1, 2):
        with tracker.training(model, framework="sklearn", params={"lr": 0.1, "depth": version}) as run:
            run.log_metrics({"val_auc": 0.5, "loss": 0.5, "accuracy": 0.5})
    tracker.flush()
    store = tracker.store
    with store.transaction() as s:
        model_id = s.execute(select(schema.ModelRow.id).where(schema.ModelRow.name == model)).scalar_one()
        keys = dict(s.execute(select(schema.MetricKeyRow.name, schema.MetricKeyRow.id)).all())
        next_training = s.execute(select(func.max(schema.TrainingRow.id))).scalar_one() + 1
        next_version = s.execute(select(func.max(schema.VersionRow.id))).scalar_one() + 1
        parent = next_version - 1
        now = dt.datetime.now(dt.timezone.utc)
        trainings, versions, params, summaries = [], [], [], []
        for i in range(count - 2):
            tid, vid, number = next_training + i, next_version + i, 3 + i
            trainings.append(
                {
                    "id": tid,
                    "uuid": str(uuid.uuid4()),
                    "model_id": model_id,
                    "status": "finished",
                    "started_at": now,
                    "ended_at": now,
                    "duration_s": 1.0 + i % 7,
                    "run_by": "bulk",
                    "host": "test",
                    "git_commit": f"{i:040x}",
                    "context": {},
                }
            )
            versions.append(
                {
                    "id": vid,
                    "model_id": model_id,
                    "number": number,
                    "training_id": tid,
                    "parent_id": parent,
                    "param_diff": {
                        "added": {},
                        "removed": {},
                        "changed": {"depth": {"old": number - 1, "new": number}},
                    },
                    "created_at": now,
                }
            )
            parent = vid
            params += [
                {"training_id": tid, "key": "lr", "value": 0.1, "display": "0.1"},
                {"training_id": tid, "key": "depth", "value": number, "display": str(number)},
            ]
            for name, value in (("val_auc", (i % 997) / 997), ("loss", 1 - (i % 991) / 991), ("accuracy", 0.5)):
                summaries.append(
                    {
                        "training_id": tid,
                        "key_id": keys[name],
                        "count": 1,
                        "last_step": 0,
                        "last_value": value,
                        "last_kind": 0,
                        "min_step": 0,
                        "min_value": value,
                        "min_kind": 0,
                        "max_step": 0,
                        "max_value": value,
                        "max_kind": 0,
                        "updated_ts": time.time(),
                    }
                )
        for table, rows in (
            (schema.TrainingRow, trainings),
            (schema.VersionRow, versions),
            (schema.ParamRow, params),
            (schema.MetricSummaryRow, summaries),
        ):
            s.execute(insert(table), rows)
    tracker.close()
    return model_id


@pytest.fixture
def thousand_versions(db_url_sqlite_mysql: str) -> tuple[str, int]:
    return db_url_sqlite_mysql, bulk_versions(db_url_sqlite_mysql, "big", 1000)


def test_a_model_with_1000_versions_renders_with_as_few_queries_as_one_with_3(
    thousand_versions: tuple[str, int],
) -> None:
    """The page's cost does not grow with versions: the same statements for 1,000 as for 3 (no N+1).

    Time is printed for the reader, never asserted: this machine is shared and its load varies.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    url, model_id = thousand_versions
    small_id = bulk_versions(url, "small", 3)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    with TestClient(ui_app.create_app(url)) as client:
        response = client.get(f"/models/{model_id}")  # warm: templates compiled, connections pooled
        html = response.text
        assert html.count('<a href="/trainings/') >= 1000  # every version is in the table
        assert ">v1000</a>" in html and "val_auc" in html
        event.listen(Engine, "before_cursor_execute", count)
        try:
            per_page = {}
            for model in (model_id, small_id):
                statements.clear()
                started = time.perf_counter()
                assert client.get(f"/models/{model}").status_code == 200
                per_page[model] = (len(statements), time.perf_counter() - started)
        finally:
            event.remove(Engine, "before_cursor_execute", count)
        print(f"\n1,000-version model page on {url.split(':')[0]}: {per_page[model_id][1] * 1000:.0f} ms, "
              f"{per_page[model_id][0]} statements")  # fmt: skip
        # A fixed few per section: versions, leaderboard, trainings, registry (aliases, notes, artifacts), instances.
        assert per_page[model_id][0] == per_page[small_id][0] <= 40, per_page
        charts = client.get(f"/models/{model_id}/charts?metric=val_auc")
        # Across versions: final and best; curves: the latest six versions.
        assert charts.status_code == 200 and charts.text.count('"points"') == 2 + 6


def test_server_starts_on_a_free_port_and_stops(sqlite_seeded: tuple[TestClient, dict[str, Any], str]) -> None:
    """The real uvicorn server answers over TCP (the browser test drives it further)."""
    import socket
    import threading
    import urllib.request

    _, _, url = sqlite_seeded
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uvicorn_server = server.make_server(url, host="127.0.0.1", port=port, log_level="warning")
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not uvicorn_server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/models", timeout=5) as response:
            assert response.status == 200 and CHURN in response.read().decode()
            assert response.headers["server"] is None
    finally:
        uvicorn_server.should_exit = True
        thread.join(10)
        sock.close()
    assert not thread.is_alive()
