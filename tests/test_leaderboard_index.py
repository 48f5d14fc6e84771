"""The top of a leaderboard, read through the (model, key, value) indexes, is the whole leaderboard's first N.

``metric_summaries.model_id`` (migration 0010) is the model of the version a training became: set when
the version is made, taken from the version when a summary is first saved after it, NULL otherwise.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from tests import _sql as db

import modeltrail
from modeltrail import LeaderboardEntry
from modeltrail._operations.apply import Applier
from modeltrail._values import DBL_MAX

#: Ties, NaN, both infinities and the finite values stored like them, both zeros.
POOL = [0.1, 0.25, 0.5, 0.5, 0.5, 0.75, 0.9, 0.9, math.nan, math.inf, -math.inf, 0.0, -0.0, DBL_MAX, -DBL_MAX, 1e-300]
SIZES = (1, 2, 3, 4, 5, 8, 13, 40, 200)
#: (metric, mode, by): goals from the names (val_auc: max, val_loss: min) and against them.
RANKINGS = [
    ("val_auc", None, "best"), ("val_auc", None, "last"), ("val_loss", None, "best"), ("val_loss", None, "last"),
    ("val_auc", "min", "best"), ("val_loss", "max", "last"),
]  # fmt: skip


def _same(value: float | None) -> str | None:
    """A float as it reads, sign of zero and NaN included (NaN != NaN would fail every comparison)."""
    return None if value is None else repr(value)


def _entries(board: list[LeaderboardEntry]) -> list[tuple[Any, ...]]:
    return [
        (e.rank, e.model, e.version, e.training_id, e.metric, _same(e.value), e.step, _same(e.last), _same(e.best),
         e.environments)
        for e in board
    ]  # fmt: skip


def _log(run: modeltrail.Training, rng: random.Random) -> None:
    """A few points of each metric from the pool; sometimes a metric is left out, sometimes all NaN."""
    for key in ("val_auc", "val_loss"):
        draw = rng.random()
        if draw < 0.1:
            continue
        values = [math.nan] * rng.randint(1, 2) if draw < 0.2 else [rng.choice(POOL) for _ in range(rng.randint(1, 3))]
        for step, value in enumerate(values):
            run.log_metric(key, value, step=step)


def _train(tracker: modeltrail.Tracker, model: str, rng: random.Random, trainings: int) -> list[str]:
    """Trainings of ``model``: most become versions; some fail, some end without one (a tuner's trials)."""
    uuids = []
    for i in range(trainings):
        if i % 7 == 6:
            with pytest.raises(RuntimeError), tracker.training(model) as run:
                _log(run, rng)
                raise RuntimeError("diverged")
            continue
        with tracker.training(model) as run:
            _log(run, rng)
            if i % 5 == 4:
                run.finish(make_version=False)
        uuids.append(run.uuid)
    return uuids


def _assert_tops(tracker: modeltrail.Tracker, model: str) -> int:
    """Every ranking's top N equals the whole leaderboard's first N; returns how many cuts fell inside a tie."""
    straddled = 0
    for metric, mode, by in RANKINGS:
        full = tracker.leaderboard(model, metric, mode=mode, by=by)
        assert full, (metric, mode, by)
        for n in SIZES:
            top = tracker.leaderboard(model, metric, mode=mode, by=by, limit=n)
            assert _entries(top) == _entries(full)[:n], (metric, mode, by, n)
            straddled += n < len(full) and full[n - 1].value == full[n].value
        best = tracker.best_version(model, metric=metric, mode=mode, by=by)
        assert _entries([best]) == _entries(full)[:1]
    return straddled


def _model_ids(url: str) -> dict[tuple[int, str], int | None]:
    rows = db.sql(
        url, "SELECT s.training_id, k.name, s.model_id FROM metric_summaries s JOIN metric_keys k ON k.id = s.key_id"
    )
    return {(t, k): m for t, k, m in rows}


def test_the_top_n_is_the_whole_leaderboards_first_n(db_url: str, tmp_path: Path) -> None:
    rng = random.Random(13)
    tracker = modeltrail.Tracker(db_url)
    uuids = _train(tracker, "board", rng, 60)
    _train(tracker, "neighbour", rng, 12)  # the same metrics, another model: never on board's leaderboard
    tracker.deploy("board", version=3, environment="production")

    # Points that reach the ledger after their training became a version (a spool replayed late):
    # a new metric's summary row is inserted then, an existing one updated.
    late = uuids[1]
    rows = [(late, "val_auc", 9, 2.0, time.time()), (late, "val_mae", 0, 0.5, time.time())]
    Applier(tracker.store).apply("points", {"batch_id": str(uuid.uuid4()), "rows": rows})

    # A model that arrives by import (its summaries are saved before its versions are made).
    source = modeltrail.Tracker(f"sqlite:///{tmp_path / 'source.db'}")
    _train(source, "imported", rng, 30)
    documents = source.export("imported")
    source.close()
    tracker.import_documents(documents)

    straddled = _assert_tops(tracker, "board") + _assert_tops(tracker, "imported")
    assert straddled > 0  # some cuts fell inside a run of equal values: the tiebreak by number was exercised

    (v2,) = [e for e in tracker.leaderboard("board", "val_auc", by="last") if e.version == 2]
    assert (
        v2.last == 2.0 and v2.step == 9 and {t.uuid: t.id for t in tracker.trainings("board")}[late] == v2.training_id
    )
    (mae,) = tracker.leaderboard("board", "val_mae", limit=5)
    assert (mae.version, mae.value) == (2, 0.5)
    assert tracker.leaderboard("board", "never_logged", mode="max", limit=3) == []
    tracker.close()


def test_summaries_carry_the_model_of_their_version_only(db_url: str) -> None:
    tracker = modeltrail.Tracker(db_url)
    with tracker.training("m") as run:
        run.log_metrics({"val_auc": 0.8, "val_loss": 0.3})
    version = run.uuid
    with tracker.training("m") as run:
        run.log_metric("val_auc", 0.9)
        run.finish(make_version=False)
    with pytest.raises(RuntimeError), tracker.training("m") as run:
        run.log_metric("val_auc", 0.95)
        raise RuntimeError("failed")
    Applier(tracker.store).apply(
        "points", {"batch_id": str(uuid.uuid4()), "rows": [(version, "late", 0, 1.0, time.time())]}
    )
    ids = {t.uuid: t.id for t in tracker.trainings("m")}
    model_id = tracker.model("m").id
    tracker.close()
    found = _model_ids(db_url)
    assert {pair: m for pair, m in found.items() if pair[0] == ids[version]} == {
        (ids[version], "val_auc"): model_id, (ids[version], "val_loss"): model_id, (ids[version], "late"): model_id,
    }  # fmt: skip
    assert [m for (t, _), m in found.items() if t != ids[version]] == [None, None]


# ------------------------------------------------------------------ migration 0010
BEFORE = "0009_metric_points_clustered"
SEED = [
    "INSERT INTO models (id, name, created_at) VALUES (1, 'm', '2026-01-01 00:00:00'), (2, 'n', '2026-01-01 00:00:00')",
    "INSERT INTO metric_keys (id, name) VALUES (1, 'val_auc')",
]
#: (training id, model id, version number or None): training 3 failed, so it is no version.
TRAININGS = [(1, 1, 1), (2, 1, 2), (3, 1, None), (4, 2, 1), (5, 1, 3)]
#: training id -> (max, last) of val_auc; training 5's max is +inf (stored as DBL_MAX, kind 2).
VALUES = {1: (0.8, 0.7), 2: (0.9, 0.9), 3: (0.99, 0.99), 4: (0.95, 0.9), 5: (math.inf, 0.5)}


def _seed(url: str) -> None:
    with db.old_ledger(url, BEFORE, SEED) as conn:
        for tid, model, number in TRAININGS:
            conn.execute(
                text(
                    "INSERT INTO trainings (id, uuid, model_id, status, started_at, context)"
                    " VALUES (:id, :uuid, :model, :status, '2026-01-01 00:00:00', '{}')"
                ),
                {
                    "id": tid,
                    "uuid": str(uuid.UUID(int=tid)),
                    "model": model,
                    "status": "finished" if number else "failed",
                },
            )
            if number is not None:
                conn.execute(
                    text(
                        "INSERT INTO versions (id, model_id, number, training_id, param_diff, created_at)"
                        " VALUES (:id, :model, :number, :id, '{}', '2026-01-01 00:01:00')"
                    ),
                    {"id": tid, "model": model, "number": number},
                )
            best, last = VALUES[tid]
            conn.execute(
                text(
                    "INSERT INTO metric_summaries (training_id, key_id, count, last_step, last_value, last_kind,"
                    " min_step, min_value, min_kind, max_step, max_value, max_kind, updated_ts)"
                    " VALUES (:id, 1, 2, 1, :last, 0, 1, :last, 0, 0, :best, :kind, 1767225600.0)"
                ),
                {"id": tid, "last": last, "best": min(best, DBL_MAX), "kind": 2 if best == math.inf else 0},
            )
        if conn.dialect.name == "postgresql":
            for table in ("models", "trainings", "versions", "metric_keys"):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
                )


def _layout(url: str) -> tuple[set[str], set[str], set[str]]:
    """metric_summaries' columns, index names and foreign keys' columns."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        columns = {c["name"] for c in found.get_columns("metric_summaries")}
        indexes = {ix["name"] for ix in found.get_indexes("metric_summaries") if ix["name"]}
        foreign = {",".join(fk["constrained_columns"]) for fk in found.get_foreign_keys("metric_summaries")}
        return columns, indexes, foreign
    finally:
        engine.dispose()


NEW_INDEXES = {
    "ix_metric_summaries_model_id_key_id_max_value",
    "ix_metric_summaries_model_id_key_id_min_value",
    "ix_metric_summaries_model_id_key_id_last_value",
}
OLD_INDEXES = {"ix_metric_summaries_key_id_max_value", "ix_metric_summaries_key_id_min_value"}


def test_migration_0010_fills_model_id_from_versions_then_downgrades(db_url: str) -> None:
    _seed(db_url)
    db.upgrade(db_url)
    assert {t: m for (t, _), m in _model_ids(db_url).items()} == {1: 1, 2: 1, 3: None, 4: 2, 5: 1}
    columns, indexes, foreign = _layout(db_url)
    assert "model_id" in columns and indexes >= NEW_INDEXES | OLD_INDEXES and "model_id" in foreign

    tracker = modeltrail.Tracker(db_url)
    board = tracker.leaderboard("m", "val_auc")
    assert [(e.rank, e.version, e.value) for e in board] == [(1, 3, math.inf), (2, 2, 0.9), (3, 1, 0.8)]
    for n in (1, 2, 3, 5):
        assert _entries(tracker.leaderboard("m", "val_auc", limit=n)) == _entries(board)[:n]
    assert [e.version for e in tracker.leaderboard("m", "val_auc", by="last", limit=2)] == [2, 1]
    with tracker.training("m") as run:  # a version made after the upgrade is ranked too
        run.log_metric("val_auc", 0.85)
    assert [e.version for e in tracker.leaderboard("m", "val_auc", limit=3)] == [3, 2, 4]
    tracker.close()

    db.downgrade(db_url, BEFORE)
    columns, indexes, foreign = _layout(db_url)
    assert "model_id" not in columns and not indexes & NEW_INDEXES and indexes >= OLD_INDEXES
    assert "model_id" not in foreign
    assert db.upgrade(db_url) == (BEFORE, "0010_leaderboard_index")  # and up again, refilled
    assert _model_ids(db_url)[(6, "val_auc")] == 1


def test_migration_0010_finishes_after_a_cut_once_the_column_was_added(db_url: str) -> None:
    """MySQL commits each DDL statement: a run cut after ADD COLUMN left the column, no index, no key, no fill."""
    _seed(db_url)
    db.sql(db_url, "ALTER TABLE metric_summaries ADD COLUMN model_id INTEGER")
    db.upgrade(db_url)
    columns, indexes, foreign = _layout(db_url)
    assert "model_id" in columns and indexes >= NEW_INDEXES and "model_id" in foreign
    assert {t: m for (t, _), m in _model_ids(db_url).items()} == {1: 1, 2: 1, 3: None, 4: 2, 5: 1}
