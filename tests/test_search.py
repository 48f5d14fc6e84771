"""Issue 15 items 2 and 3: every training can be found (CLI, dashboard, show) and searched like search_runs."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

import modeltrail
from modeltrail import ValidationError
from modeltrail.cli import main
from modeltrail.ui import app as ui_app

WHERE = "params.max_depth >= 8 and metrics.val_auc > 0.9 and status = 'finished'"


def build(url: str) -> dict[str, int]:
    """churn-rf: four finished versions (max_depth 4, 8, 10, 12), one failed run (depth 9), one running;
    churn-lgbm (tag team=risk): one version whose max_depth is the string "11", as MLflow stores params."""
    tracker = modeltrail.Tracker(url)
    ids: dict[str, int] = {}
    for depth, auc in [(4, 0.80), (8, 0.92), (10, 0.95), (12, 0.85)]:
        crit = "gini" if depth % 4 == 0 else "entropy"
        with tracker.training("churn-rf", params={"max_depth": depth, "criterion": crit}) as r:
            r.log_metrics({"val_auc": auc - 0.1, "val_loss": 1 - auc}, step=0)
            r.log_metrics({"val_auc": auc, "val_loss": 1.05 - auc}, step=1)
        ids[f"d{depth}"] = r.id
    failed = tracker.training("churn-rf", params={"max_depth": 9})
    failed.log_metric("val_auc", 0.99, step=0)
    failed.finish("failed", error="out of memory")
    ids["failed"] = failed.id
    running = tracker.training("churn-rf", params={"max_depth": 20})
    running.flush()
    ids["running"] = running.id
    with tracker.training("churn-lgbm", params={"max_depth": "11"}, tags={"team": "risk"}) as r:
        r.log_metric("val_auc", 0.97)
    ids["lgbm"] = r.id
    tracker.close()
    return ids


def test_search_values_operators_and_order(db_url: str) -> None:
    ids = build(db_url)
    tracker = modeltrail.Tracker(db_url)

    def found(where: str | None = None, model: str | None = "churn-rf", **kw: object) -> list[int]:
        return [t.id for t in tracker.trainings(model, where=where, **kw)]  # type: ignore[arg-type]

    assert found(WHERE, order_by="metrics.val_auc desc", limit=20) == [ids["d10"], ids["d8"]]
    assert found(WHERE, model=None, order_by="metrics.val_auc desc") == [ids["lgbm"], ids["d10"], ids["d8"]]
    assert found("version is null") == [ids["failed"], ids["running"]]
    assert found("status = 'failed' or status = 'running'") == [ids["failed"], ids["running"]]
    assert found("params.criterion like 'gi%'") == [ids["d4"], ids["d8"], ids["d12"]]
    assert found("params.criterion = 'entropy'") == [ids["d10"]]
    assert found("params.max_depth in (4, 12)") == [ids["d4"], ids["d12"]]
    assert found("not (params.max_depth < 10) and version is not null") == [ids["d10"], ids["d12"]]
    assert found("params.max_depth > 10", model=None) == [ids["d12"], ids["running"], ids["lgbm"]]  # "11" too
    assert found("params.criterion is null") == [ids["failed"], ids["running"]]
    assert found("metrics.val_auc.max >= 0.95 and metrics.val_auc.min < 0.9") == [ids["d10"]]
    assert found("metrics.val_loss.best < 0.09") == [ids["d8"], ids["d10"]]  # val_loss: min is best
    assert found("tags.team = 'risk'", model=None) == [ids["lgbm"]]
    assert found("model = 'churn-lgbm'", model=None) == [ids["lgbm"]]
    assert found("version >= 3 and duration >= 0 and started_at > '2000-01-01'") == [ids["d10"], ids["d12"]]
    assert found(None, order_by="params.max_depth desc", limit=2) == [ids["running"], ids["d12"]]
    assert found(None, status="failed") == [ids["failed"]]
    assert found() == [ids[k] for k in ("d4", "d8", "d10", "d12", "failed", "running")]  # unchanged default
    tracker.close()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("params.max_depth >= 8 andd x", "where: unexpected 'andd' at column 23"),
        ("params.max_depth >=", "where: unexpected the end at column 20"),
        ("(status = 'failed'", "expected ')'"),
        ("colour = 'red'", "unknown attribute 'colour' at column 1"),
        ("metrics.val_auc > 'high'", "compares with numbers"),
        ("status = 'x' ; drop table trainings", "unexpected ';' at column 14"),
        ("metrics.lossless_ratio.best > 1", "which way is better"),
    ],
)
def test_bad_filters_name_the_token_and_column(sqlite_url: str, where: str, message: str) -> None:
    build(sqlite_url)
    tracker = modeltrail.Tracker(sqlite_url)
    with pytest.raises(ValidationError) as e:
        tracker.trainings(where=where)
    assert message in str(e.value)
    with pytest.raises(ValidationError, match="order_by: unexpected 'sideways' at column 17"):
        tracker.trainings(order_by="metrics.val_auc sideways")
    with pytest.raises(ValidationError, match="limit"):
        tracker.trainings(limit=0)
    tracker.close()


def test_cli_trainings_and_show(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    ids = build(db_url)
    args = ["--uri", db_url, "trainings", "churn-rf", "--where", WHERE, "--order-by", "metrics.val_auc desc"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["id", "model", "version", "status"]
    assert [line.split()[0] for line in lines[1:]] == [str(ids["d10"]), str(ids["d8"])]
    assert main(["--uri", db_url, "--json", "trainings", "--status", "failed"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["version"], r["error"]) for r in rows] == [(ids["failed"], None, "out of memory")]
    assert main(["--uri", db_url, "trainings", "--where", "params.max_depth >= 8 andd"]) == 2
    assert (
        capsys.readouterr().err
        == "modeltrail: error: where: unexpected 'andd' at column 23 (expected and, or, or the end)\n"
    )
    assert main(["--uri", db_url, "trainings", "--where", "model = 'nothing'"]) == 0
    assert "no trainings match" in capsys.readouterr().out
    assert main(["--uri", db_url, "show", "churn-rf"]) == 0
    out = capsys.readouterr().out
    assert "  versions     4\n" in out
    assert "  trainings    6 (1 failed without a version, 1 running without a version)" in out
    assert main(["--uri", db_url, "--json", "show", "churn-rf"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (len(shown["versions"]), shown["trainings"]["total"]) == (4, 6)
    assert shown["trainings"]["without_version"] == {"failed": 1, "running": 1}


def test_dashboard_trainings_page_model_page_and_api(db_url: str) -> None:
    ids = build(db_url)
    with TestClient(ui_app.create_app(db_url)) as client:
        page = client.get("/trainings")
        assert page.status_code == 200
        assert all(f'href="/trainings/{i}"' in page.text for i in ids.values())
        page = client.get("/trainings", params={"where": WHERE, "order_by": "metrics.val_auc desc"})
        assert page.status_code == 200 and "3 trainings" in page.text  # churn-lgbm's "11" too
        assert page.text.index(f'href="/trainings/{ids["d10"]}"') < page.text.index(f'href="/trainings/{ids["d8"]}"')
        assert f'href="/trainings/{ids["failed"]}"' not in page.text
        bad = client.get("/trainings", params={"where": "params.max_depth >= 8 andd"})
        assert bad.status_code == 400 and "unexpected &#39;andd&#39; at column 23" in bad.text
        model = client.get("/models/1")
        assert model.status_code == 200 and 'id="trainings-table"' in model.text
        assert (
            f'href="/trainings/{ids["failed"]}"' in model.text and f'href="/trainings/{ids["running"]}"' in model.text
        )
        assert client.get(f"/trainings/{ids['failed']}").status_code == 200
        api = client.get("/api/trainings", params={"where": "version is null"})
        assert api.status_code == 200 and [t["id"] for t in api.json()] == [ids["failed"], ids["running"]]
        assert client.get("/api/trainings", params={"where": "status =="}).status_code == 400
