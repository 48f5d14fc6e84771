"""Migration 0009: metric_points rebuilt on its natural key, logging order kept, metric_blocks filled; and back."""

from __future__ import annotations

import math

from sqlalchemy import create_engine, inspect, text
from tests import _sql as db

import modeltrail

BEFORE = "0008_serving"
SEED = [
    "INSERT INTO models (id, name, created_at) VALUES (1, 'm', '2026-01-01 00:00:00')",
    "INSERT INTO trainings (id, uuid, model_id, status, started_at, ended_at, context)"
    " VALUES (1, '00000000-0000-0000-0000-000000000001', 1, 'finished', '2026-01-01 00:00:00',"
    " '2026-01-01 00:01:00', '{}')",
    "INSERT INTO metric_keys (id, name) VALUES (1, 'loss'), (2, 'acc')",
]
#: (id, key, step, value): step 5 logged twice (ids 3 then 4: 0.7 first), one NaN (kind 1), ids out of step order.
POINTS = [(1, 1, 0, 0.9), (2, 1, 5, 0.5), (3, 1, 3, 0.8), (4, 1, 3, 0.6), (5, 1, 9, None), (6, 2, 0, 0.1)]
POINTS += [(10 + i, 2, i + 1, float(i % 7)) for i in range(600)]  # three blocks of acc


def _seed(url: str) -> None:
    with db.old_ledger(url, BEFORE, SEED) as conn:
        conn.execute(
            text(
                "INSERT INTO metric_points (id, training_id, key_id, step, value, kind, ts)"
                " VALUES (:id, 1, :key, :step, :value, :kind, :ts)"
            ),
            [
                {"id": i, "key": k, "step": s, "value": v, "kind": 1 if v is None else 0, "ts": 1767225600.0 + i}
                for i, k, s, v in POINTS
            ],
        )
        conn.execute(
            text(
                "INSERT INTO metric_summaries (training_id, key_id, count, last_step, last_value, last_kind, min_step,"
                " min_value, min_kind, max_step, max_value, max_kind, updated_ts) VALUES"
                " (1, 1, 5, 9, NULL, 1, 5, 0.5, 0, 0, 0.9, 0, 1767225600.0),"
                " (1, 2, 601, 600, 4.0, 0, 0, 0.1, 0, 6, 6.0, 0, 1767225600.0)"
            )
        )


def test_upgrade_keeps_logging_order_and_fills_blocks_then_downgrades(db_url: str) -> None:
    _seed(db_url)
    db.upgrade(db_url)
    columns = {c["name"] for c in inspect(create_engine(db_url)).get_columns("metric_points")}
    assert "id" not in columns and "seq" in columns
    assert db.sql(db_url, "SELECT step, seq, value FROM metric_points WHERE key_id = 1 ORDER BY step, seq") == [
        (0, 0, 0.9), (3, 2, 0.8), (3, 3, 0.6), (5, 1, 0.5), (9, 4, None),
    ]  # fmt: skip
    blocks = db.sql(db_url, "SELECT key_id, block, count, min_step, min_value, max_step, max_value FROM metric_blocks")
    # acc in logging order: 0.1 at step 0, then (k - 1) % 7 at step k; ties go to the earliest point.
    assert sorted(blocks) == [
        (1, 0, 5, 5, 0.5, 0, 0.9),
        (2, 0, 256, 1, 0.0, 7, 6.0),
        (2, 1, 256, 260, 0.0, 259, 6.0),
        (2, 2, 89, 512, 0.0, 518, 6.0),
    ]
    tracker = modeltrail.Tracker(db_url)
    loss = tracker.metric_history(1, "loss")
    assert [(p.step, None if math.isnan(p.value) else p.value) for p in loss] == [
        (0, 0.9), (3, 0.8), (3, 0.6), (5, 0.5), (9, None),
    ]  # fmt: skip
    curve = tracker.metric_history(1, "acc", max_points=40)
    assert max(p.value for p in curve) == 6.0 and min(p.value for p in curve) == 0.0
    with tracker.training("m") as run:  # the writer's seq carries on after the migrated points
        run.log_metric("loss", 0.1, step=1)
    tracker.close()

    db.downgrade(db_url, BEFORE)
    assert not inspect(create_engine(db_url)).has_table("metric_blocks")
    back = db.sql(db_url, "SELECT step, value FROM metric_points WHERE training_id = 1 AND key_id = 1 ORDER BY id")
    assert back == [(0, 0.9), (5, 0.5), (3, 0.8), (3, 0.6), (9, None)]
    db.upgrade(db_url)  # and up again, from the downgraded table
    assert len(db.sql(db_url, "SELECT * FROM metric_points")) == len(POINTS) + 1


def test_upgrade_finishes_after_a_half_made_copy(db_url: str) -> None:
    """A run cut during the copy left metric_points_new behind: the next run starts the copy afresh."""
    _seed(db_url)
    db.sql(db_url, "CREATE TABLE metric_points_new (training_id INTEGER, junk INTEGER)")
    db.upgrade(db_url)
    assert len(db.sql(db_url, "SELECT * FROM metric_points")) == len(POINTS)
    assert not inspect(create_engine(db_url)).has_table("metric_points_new")
