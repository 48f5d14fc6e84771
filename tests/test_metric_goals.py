"""Issue 15 item 1: one rule for which way is better — declared per model, else the name's whole words, else ask."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

import modeltrail
from modeltrail import ValidationError
from modeltrail._read.ranking import infer_goal
from modeltrail.cli import main
from modeltrail.ui import app as ui_app


def build(url: str) -> None:
    """churn-rf: v1 has the lowest val_loss (0.1008), v2 the highest AUC; 'lossless_ratio' says nothing."""
    tracker = modeltrail.Tracker(url)
    for loss, auc, ratio in [(0.1008, 0.90, 0.5), (0.1028, 0.93, 0.7)]:
        with tracker.training("churn-rf") as r:
            r.log_metrics({"val_loss": loss, "val_auc": auc, "lossless_ratio": ratio}, step=0)
    tracker.close()


@pytest.mark.parametrize(
    ("name", "goal"),
    [
        ("val_loss", "min"), ("train.loss", "min"), ("valLoss", "min"), ("rmse", "min"), ("test_error", "min"),
        ("perplexity", "min"), ("fit.duration_s", "min"), ("val_auc", "max"), ("accuracy", "max"), ("f1", "max"),
        ("r2", "max"), ("precision", "max"), ("recall_at_k", "max"), ("lossless_ratio", None), ("auc_loss", None),
        ("errand", None), ("throughput", None),
    ],
)  # fmt: skip
def test_goal_is_inferred_from_whole_name_segments(name: str, goal: str | None) -> None:
    assert infer_goal(name) == goal


def test_best_and_leaderboard_pick_the_lowest_loss_and_ask_when_unclear(db_url: str) -> None:
    build(db_url)
    tracker = modeltrail.Tracker(db_url)
    assert tracker.best_version("churn-rf", metric="val_loss").version == 1
    assert [e.version for e in tracker.leaderboard("churn-rf", "val_loss")] == [1, 2]
    assert tracker.best_version("churn-rf", metric="val_auc").version == 2
    assert [m.best for m in tracker.metric_by_version("churn-rf", "val_loss")] == [0.1008, 0.1028]
    with pytest.raises(ValidationError, match=r"lossless_ratio.*set_metric_goal"):
        tracker.leaderboard("churn-rf", "lossless_ratio")
    with pytest.raises(ValidationError, match="lossless_ratio"):
        tracker.best_version("churn-rf", metric="lossless_ratio")
    assert tracker.best_version("churn-rf", metric="lossless_ratio", mode="min").version == 1
    deltas = {d.key: d for d in tracker.compare("churn-rf", 1, 2).metrics}
    assert (deltas["val_loss"].mode, deltas["val_loss"].best_a) == ("min", 0.1008)
    assert (deltas["lossless_ratio"].mode, deltas["lossless_ratio"].best_a) == ("unknown", None)
    tracker.close()


def test_declared_goal_is_recorded_audited_and_used_everywhere(db_url: str, count_rows: Callable[..., int]) -> None:
    build(db_url)
    tracker = modeltrail.Tracker(db_url)
    record = tracker.set_metric_goal("churn-rf", "lossless_ratio", "max", set_by="ana")
    assert (record.model, record.metric, record.goal, record.set_by) == ("churn-rf", "lossless_ratio", "max", "ana")
    assert tracker.best_version("churn-rf", metric="lossless_ratio").version == 2
    assert {d.key: d.mode for d in tracker.compare("churn-rf", 1, 2).metrics}["lossless_ratio"] == "max"
    # A declared goal overrides the name's, and a second declaration replaces the first.
    tracker.set_metric_goal("churn-rf", "val_loss", "max")
    assert tracker.best_version("churn-rf", metric="val_loss").version == 2
    tracker.set_metric_goal("churn-rf", "val_loss", "min")
    assert tracker.best_version("churn-rf", metric="val_loss").version == 1
    assert [(g.metric, g.goal) for g in tracker.metric_goals("churn-rf")] == [
        ("lossless_ratio", "max"),
        ("val_loss", "min"),
    ]
    events = tracker.audit(action="model.metric_goal")
    assert len(events) == 3
    assert (events[0].before, events[0].after) == (
        {"metric": "val_loss", "goal": "max"},
        {"metric": "val_loss", "goal": "min"},
    )
    assert count_rows(db_url, "metric_goals") == 2
    with pytest.raises(ValidationError, match="goal must be"):
        tracker.set_metric_goal("churn-rf", "val_loss", "lowest")
    with pytest.raises(modeltrail.NotFoundError):
        tracker.set_metric_goal("nope", "val_loss", "min")
    tracker.close()


def test_cli_best_uses_the_rule_and_asks_for_mode(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    build(db_url)
    assert main(["--uri", db_url, "--json", "best", "churn-rf", "--metric", "val_loss"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
    assert main(["--uri", db_url, "leaderboard", "churn-rf", "--metric", "lossless_ratio"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modeltrail: error: ") and "--mode max or --mode min" in err
    assert (
        main(["--uri", db_url, "--json", "leaderboard", "churn-rf", "--metric", "lossless_ratio", "--mode", "max"]) == 0
    )
    assert [e["version"] for e in json.loads(capsys.readouterr().out)] == [2, 1]
    assert main(["--uri", db_url, "history", "churn-rf", "--metric", "lossless_ratio", "--across-versions"]) == 2
    assert "--mode" in capsys.readouterr().err


def test_dashboard_ranks_by_the_rule_and_asks_when_unclear(db_url: str) -> None:
    build(db_url)
    with TestClient(ui_app.create_app(db_url)) as client:
        board = client.get("/api/models/churn-rf/leaderboard", params={"metric": "val_loss"})
        assert board.status_code == 200 and [e["version"] for e in board.json()] == [1, 2]
        unclear = client.get("/api/models/churn-rf/leaderboard", params={"metric": "lossless_ratio"})
        assert unclear.status_code == 400 and "lossless_ratio" in unclear.text
        page = client.get("/models/1", params={"metric": "lossless_ratio"})
        assert page.status_code == 200 and 'id="mode-unknown"' in page.text
        page = client.get("/models/1", params={"metric": "val_loss"})
        assert 'id="leaderboard-table"' in page.text and '<option value="min" selected>' in page.text


def test_migration_0006_is_idempotent(db_url: str) -> None:
    build(db_url)
    tracker = modeltrail.Tracker(db_url)
    state = tracker.schema_state(db_url)
    from modeltrail._migrations import head_revision

    assert state.current == head_revision()
    # Upgrading from 0005 again when the table already exists keeps it (and the goals in it).
    tracker.set_metric_goal("churn-rf", "val_loss", "min")
    tracker.close()
    from alembic import command

    from modeltrail._migrations import alembic_config

    engine = create_engine(db_url)
    with engine.begin() as conn:
        command.stamp(alembic_config(conn), "0005_evaluations")
        command.upgrade(alembic_config(conn), "head")
    assert inspect(engine).has_table("metric_goals")
    engine.dispose()
    tracker = modeltrail.Tracker(db_url)
    assert [g.goal for g in tracker.metric_goals("churn-rf")] == ["min"]
    tracker.close()
