"""`modeltrail db compact`: old trainings keep summaries and a downsampled curve, lose the other raw points."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
from tests import _sql as db

import modeltrail
from modeltrail import ValidationError
from modeltrail.cli import main

POINTS = 3_000


def _value(i: int) -> float:
    return 50.0 if i == 2_222 else -50.0 if i == 111 else (i % 97) / 97


def _train(tracker: modeltrail.Tracker, model: str) -> int:
    with tracker.training(model, params={"a": 1}) as run:
        for i in range(POINTS):
            run.log_metric("loss", _value(i), step=i)
        for i in range(10):
            run.log_metric("acc", i / 10, step=i)
    return tracker.trainings(model)[-1].id


def _points(url: str, training_id: int, key: str) -> int:
    return int(
        db.sql(
            url,
            "SELECT COUNT(*) FROM metric_points p JOIN metric_keys k ON k.id = p.key_id"
            " WHERE p.training_id = :t AND k.name = :k",
            t=training_id,
            k=key,
        )[0][0]
    )


def test_compact_thins_old_trainings_only_and_keeps_summaries(db_url: str) -> None:
    tracker = modeltrail.Tracker(db_url)
    old, recent = _train(tracker, "churn"), _train(tracker, "churn")
    other = _train(tracker, "fraud")
    long_ago = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(days=100)
    db.sql(db_url, "UPDATE trainings SET ended_at = :at WHERE id IN (:a, :b)", at=long_ago, a=old, b=other)
    running = tracker.training("churn").__enter__()
    for i in range(POINTS):
        running.log_metric("loss", float(i), step=i)
    running.flush()
    summaries = {t.id: t.metrics for t in tracker.trainings()}

    dry = tracker.compact(older_than="90d", keep=100, model="churn", dry_run=True)
    assert [(t.training_id, t.points_before) for t in dry.trainings] == [(old, POINTS + 10)]
    assert _points(db_url, old, "loss") == POINTS  # a dry run deletes nothing

    report = tracker.compact(older_than="90d", keep=100, model="churn")
    ((done),) = report.trainings
    assert (done.training_id, done.points_before) == (old, POINTS + 10)
    left = _points(db_url, old, "loss")
    assert 50 <= left <= 100 and done.points_after == left + 10 == dry.trainings[0].points_after
    assert _points(db_url, old, "acc") == 10  # under --keep: untouched
    assert _points(db_url, recent, "loss") == POINTS  # ended recently
    assert _points(db_url, other, "loss") == POINTS  # another model
    assert _points(db_url, running.id, "loss") == POINTS  # running
    assert {t.id: t.metrics for t in tracker.trainings() if t.id != running.id} == {
        k: v for k, v in summaries.items() if k != running.id
    }
    kept = tracker.metric_history(old, "loss")
    assert (kept[0].step, kept[-1].step) == (0, POINTS - 1)
    assert {50.0, -50.0} <= {p.value for p in kept}
    after = tracker.metric_history(old, "loss", max_points=200)
    assert max(p.value for p in after) == 50.0 and min(p.value for p in after) == -50.0
    (event,) = tracker.audit(action="training.compact")
    assert event.entity_id == str(old) and event.before == {"points": POINTS + 10}
    assert event.after == {"points": left + 10, "keep_per_metric": 100}

    again = tracker.compact(older_than="90d", keep=100, model="churn")  # idempotent
    assert again.trainings == [] and _points(db_url, old, "loss") == left
    assert len(tracker.audit(action="training.compact")) == 1
    running.__exit__(None, None, None)


def test_compact_cli(db_url: str, capsys: pytest.CaptureFixture[str], count_rows: Callable[..., int]) -> None:
    tracker = modeltrail.Tracker(db_url)
    old = _train(tracker, "churn")
    tracker.close()
    assert main(["db", "compact", "--older-than", "0h", "--keep", "40", "--dry-run", "--uri", db_url]) == 0
    assert "would delete" in capsys.readouterr().out and count_rows(db_url, "metric_points") == POINTS + 10
    assert main(["db", "compact", "--older-than", "0h", "--keep", "40", "--uri", db_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ((done),) = report["trainings"]
    assert done["training_id"] == old and done["points_after"] == count_rows(db_url, "metric_points")
    assert count_rows(db_url, "audit_events", "WHERE action = 'training.compact'") == 1
    assert main(["db", "compact", "--older-than", "ninety days", "--uri", db_url]) == 2
    assert "12h, 90d, 2w" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs", [{"older_than": "90"}, {"older_than": 5}, {"older_than": "1d", "keep": 3}])
def test_bad_compact_options(tmp_path: object, kwargs: dict[str, object]) -> None:
    tracker = modeltrail.Tracker(f"sqlite:///{tmp_path}/l.db")
    with pytest.raises(ValidationError):
        tracker.compact(**kwargs)  # type: ignore[arg-type]
