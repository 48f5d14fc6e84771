"""Pipeline stages held open across calls, and evaluations of existing versions on named datasets."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

import modeltrail
from modeltrail import Dataset, NotFoundError, ValidationError
from modeltrail.cli import main


# ----------------------------------------------------------------- stages
def test_begin_stage_spans_calls_and_end_records_it_once(tracker: modeltrail.Tracker) -> None:
    with tracker.training("pipe") as run:
        prep = run.begin_stage("preprocess")
        prep.log_param("scaler", "standard")
        prep.end()
        prep.end(ValueError("too late"))  # a second end changes nothing
        train = run.begin_stage("train")
        train.log_metric("loss", 0.5)
        train.end()
    (record,) = tracker.trainings("pipe")
    assert [(s.name, s.position, s.status, s.error) for s in record.stages] == [
        ("preprocess", 0, "finished", None),
        ("train", 1, "finished", None),
    ]
    assert record.stages[0].params == {"scaler": "standard"}
    assert record.params["preprocess.scaler"] == "standard" and record.metrics["train.loss"].last == 0.5
    assert record.metrics["train.duration_s"].last == pytest.approx(record.stages[1].duration_s)


def test_a_stage_left_open_fails_with_the_training_and_names_itself(tracker: modeltrail.Tracker) -> None:
    with tracker.training("pipe") as run:
        with run.stage("preprocess"):
            pass
        run.begin_stage("train")  # a framework that never called its end hook
    (ok,) = tracker.trainings("pipe")
    assert [(s.name, s.status) for s in ok.stages] == [("preprocess", "finished"), ("train", "finished")]

    run = tracker.training("pipe")
    run.begin_stage("train")
    run.finish("failed", error="KeyboardInterrupt: ")
    failed = tracker.get_training(run.id)
    assert failed.error == "stage 'train' failed: KeyboardInterrupt: "
    assert [(s.name, s.status, s.error) for s in failed.stages] == [("train", "failed", "KeyboardInterrupt: ")]
    assert failed.version is None


# ----------------------------------------------------------------- evaluations
def build(tracker: modeltrail.Tracker) -> None:
    for depth in (3, 5, 8):
        with tracker.training("churn-rf", params={"depth": depth}) as run:
            run.log_metric("auc", 0.7 + depth / 100)


def test_evaluate_records_metrics_of_a_version_without_making_one(tracker: modeltrail.Tracker) -> None:
    build(tracker)
    test_set = Dataset(name="test-2026-12", digest="f" * 64, n_rows=500)
    moment = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.timezone.utc)
    first = tracker.evaluate(
        "churn-rf", version=2, dataset=test_set, metrics={"auc": 0.91, "loss": math.nan, "gain": math.inf},
        evaluated_by="alice", description="December test set", evaluated_at=moment,
    )  # fmt: skip
    tracker.evaluate("churn-rf", dataset="2027-01", metrics={"auc": 0.88})  # the latest version by default

    assert [v.number for v in tracker.versions("churn-rf")] == [1, 2, 3]  # no new version
    rows = tracker.evaluations("churn-rf")
    assert [(e.version, e.dataset, e.dataset_digest) for e in rows] == [
        (2, "test-2026-12", "f" * 64),
        (3, "2027-01", None),
    ]
    e = rows[0]
    assert (e.id, e.evaluated_by, e.description, e.evaluated_at) == (first.id, "alice", "December test set", moment)
    assert e.metrics["auc"] == 0.91 and math.isnan(e.metrics["loss"]) and e.metrics["gain"] == math.inf
    assert [r.version for r in tracker.evaluations("churn-rf", version=3)] == [3]
    assert [r.dataset for r in tracker.evaluations("churn-rf", dataset="2027-01")] == ["2027-01"]
    (event,) = tracker.audit(action="evaluation.create", limit=1)
    assert event.after["model"] == "churn-rf" and event.after["version"] == 3 and event.after["dataset"] == "2027-01"


def test_leaderboards_and_comparisons_rank_by_evaluation_metrics(tracker: modeltrail.Tracker) -> None:
    build(tracker)
    tracker.evaluate("churn-rf", version=1, dataset="test", metrics={"auc": 0.80})
    tracker.evaluate("churn-rf", version=1, dataset="test", metrics={"auc": 0.95})  # re-evaluated: the latest counts
    tracker.evaluate("churn-rf", version=2, dataset="test", metrics={"auc": math.nan})
    tracker.evaluate("churn-rf", version=3, dataset="test", metrics={"auc": 0.90, "loss": 0.2})
    tracker.evaluate("churn-rf", version=3, dataset="other", metrics={"auc": 0.99})
    tracker.deploy("churn-rf", 3, "production")

    board = tracker.leaderboard("churn-rf", "auc", dataset="test")
    assert [(e.rank, e.version, e.dataset) for e in board[:2]] == [(1, 1, "test"), (2, 3, "test")]
    assert board[0].value == 0.95 and board[1].environments == ["production"]
    assert board[2].version == 2 and math.isnan(board[2].value)  # NaN ranks last
    assert [e.version for e in tracker.leaderboard("churn-rf", "auc", dataset="test", mode="min")] == [3, 1, 2]
    assert tracker.best_version("churn-rf", metric="auc", dataset="test").version == 1
    # training metrics still rank the usual way
    assert tracker.best_version("churn-rf", metric="auc").version == 3

    c = tracker.compare("churn-rf", 1, 3)
    assert [(d.dataset, d.key, d.value_a, d.value_b) for d in c.evaluations] == [("test", "auc", 0.95, 0.90)]
    assert c.evaluations[0].delta == pytest.approx(-0.05)


def test_evaluate_refuses_what_it_cannot_record(tracker: modeltrail.Tracker) -> None:
    build(tracker)
    with pytest.raises(NotFoundError, match="no version 9"):
        tracker.evaluate("churn-rf", version=9, dataset="test", metrics={"auc": 1.0})
    with pytest.raises(ValidationError, match="non-empty mapping"):
        tracker.evaluate("churn-rf", version=1, dataset="test", metrics={})
    with pytest.raises(ValidationError, match="not a number"):
        tracker.evaluate("churn-rf", version=1, dataset="test", metrics={"auc": "high"})
    with pytest.raises(ValidationError, match="dataset name"):
        tracker.evaluate("churn-rf", version=1, dataset=" test ", metrics={"auc": 1.0})
    assert tracker.evaluations("churn-rf") == []


def test_cli_evaluate_evaluations_and_leaderboard_by_dataset(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    tracker = modeltrail.Tracker(db_url)
    build(tracker)
    assert main(["--uri", db_url, "evaluate", "churn-rf", "2", "--dataset", "test", "--metric", "auc=0.97"]) == 0
    assert "churn-rf version 2 on test: auc=0.97" in capsys.readouterr().out
    assert main(["--uri", db_url, "evaluate", "churn-rf", "1", "--dataset", "test", "--metric", "auc=nan"]) == 0
    capsys.readouterr()
    assert main(["--uri", db_url, "--json", "evaluations", "churn-rf"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["metrics"]["auc"]) for r in rows] == [(1, "NaN"), (2, 0.97)]
    assert main(["--uri", db_url, "leaderboard", "churn-rf", "--metric", "auc", "--dataset", "test"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["1", "2", "0.97"] and lines[2].split()[:3] == ["2", "1", "nan"]
    assert main(["--uri", db_url, "evaluate", "churn-rf", "1", "--dataset", "test", "--metric", "auc"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
