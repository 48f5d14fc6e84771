"""A database made by every earlier revision upgrades to head with its data intact."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text

import modeltrail
from modeltrail import _migrations as migrations
from modeltrail._errors import SchemaOutdatedError
from modeltrail._schema import VERSION_TABLE
from modeltrail._store import Store

# Rows valid at the first revision; every later revision must keep them readable.
SEED = [
    "INSERT INTO models (id, name, framework, model_type, created_at)"
    " VALUES (1, 'old-model', 'sklearn', 'classifier', '2026-01-01 00:00:00')",
    "INSERT INTO trainings (id, uuid, model_id, status, started_at, ended_at, duration_s, context)"
    " VALUES (1, '00000000-0000-0000-0000-000000000001', 1, 'finished',"
    " '2026-01-01 00:00:00', '2026-01-01 00:01:00', 60.0, '{}')",
    "INSERT INTO params (training_id, key, value, display) VALUES (1, 'max_depth', '8', '8')",
    "INSERT INTO metric_keys (id, name) VALUES (1, 'val_auc')",
    "INSERT INTO metric_points (training_id, key_id, step, {seq}value, kind, ts)"
    " VALUES (1, 1, 0, {seq_0}0.8, 0, 1767225600.0)",
    "INSERT INTO metric_points (training_id, key_id, step, {seq}value, kind, ts)"
    " VALUES (1, 1, 1, {seq_1}0.9, 0, 1767225601.0)",
    "INSERT INTO metric_summaries (training_id, key_id, count, last_step, last_value, last_kind, min_step, min_value,"
    " min_kind, max_step, max_value, max_kind, updated_ts)"
    " VALUES (1, 1, 2, 1, 0.9, 0, 0, 0.8, 0, 1, 0.9, 0, 1767225601.0)",
    "INSERT INTO versions (id, model_id, number, training_id, param_diff, created_at)"
    ' VALUES (1, 1, 1, 1, \'{"added": {"max_depth": 8}, "removed": {}, "changed": {}}\', \'2026-01-01 00:01:00\')',
]

SEQ = ("seq", "seq_0", "seq_1")


@pytest.mark.parametrize("revision", migrations.REVISIONS[:-1])
def test_every_earlier_revision_upgrades_with_data(db_url: str, revision: str) -> None:
    old = Store(db_url, check=False)
    old.upgrade(revision)
    with old.engine.begin() as conn:
        # From 0009 on, a point also has its ordinal in logging order.
        clustered = "seq" in {c["name"] for c in inspect(conn).get_columns("metric_points")}
        for statement in SEED:
            statement = statement.replace("params (training_id, key,", _params_columns(db_url))
            if "{seq}" in statement:
                seq = {"seq": "seq, ", "seq_0": "0, ", "seq_1": "1, "} if clustered else dict.fromkeys(SEQ, "")
                statement = statement.format_map(seq)
            conn.execute(text(statement))
    old.close()

    with pytest.raises(SchemaOutdatedError, match="modeltrail db upgrade"):
        Store(db_url)
    store = Store(db_url, check=False)
    before, after = store.upgrade()
    store.close()
    assert (before, after) == (revision, migrations.head_revision())

    tracker = modeltrail.Tracker(db_url)
    (version,) = tracker.versions("old-model")
    assert version.number == 1 and version.param_diff["added"] == {"max_depth": 8}
    (record,) = tracker.trainings("old-model")
    assert record.params == {"max_depth": 8} and record.duration_s == 60.0
    assert [(p.step, p.value) for p in tracker.metric_history("old-model", "val_auc")] == [(0, 0.8), (1, 0.9)]
    assert record.metrics["val_auc"].max == 0.9
    with tracker.training("old-model", params={"max_depth": 10}):
        pass
    assert [v.number for v in tracker.versions("old-model")] == [1, 2]
    events = _count(db_url, "SELECT COUNT(*) FROM audit_events WHERE action = 'schema.upgrade'")
    assert events >= 1


def _params_columns(url: str) -> str:
    # "key" is reserved in MySQL; quote it the way each backend wants.
    return "params (training_id, `key`," if url.startswith("mysql") else 'params (training_id, "key",'


def _count(url: str, sql: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize("revision", migrations.REVISIONS)
def test_every_step_run_again_after_a_cut_before_its_stamp_finishes(db_url: str, revision: str) -> None:
    """MySQL commits DDL as it goes: a step's tables can exist while the stamp still names the step before.

    Running the upgrade again must finish the step, not fail with "already exists".
    """
    revisions = list(migrations.REVISIONS)
    previous = revisions[revisions.index(revision) - 1] if revisions.index(revision) else None
    store = Store(db_url, check=False)
    store.upgrade(revision)
    with store.engine.begin() as conn:
        if previous is None:
            conn.execute(text(f"DELETE FROM {VERSION_TABLE}"))
        else:
            conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = :v"), {"v": previous})
    store.close()

    store = Store(db_url, check=False)
    try:
        assert store.upgrade() == (previous, migrations.head_revision())
    finally:
        store.close()
    tracker = modeltrail.Tracker(db_url)
    with tracker.training("after-the-cut", params={"a": 1}) as run:
        run.log_metric("x", 1.0)
    assert [v.number for v in tracker.versions("after-the-cut")] == [1]
