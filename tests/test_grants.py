"""Least privilege (issue 14, item 14): each role does its job and is refused the rest, on MariaDB and PostgreSQL.

The users are real: created by the test, given exactly what ``modeltrail db grants`` prints, then made
to try every rewrite the issue names, as plain SQL, and refused by the server.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from tests.conftest import BACKENDS, make_db_url

import modeltrail
from modeltrail._errors import ConfigurationError, PermissionDeniedError, ValidationError
from modeltrail._grants import grant_statements
from modeltrail.cli import main


def test_grant_statements_cover_every_table_and_never_audit_updates() -> None:
    statements = grant_statements("ledger")
    assert "GRANT SELECT, INSERT ON `ledger`.`audit_events` TO 'modeltrail_writer'@'%';" in statements
    assert not [s for s in statements if "audit_events" in s and ("UPDATE" in s or "DELETE" in s) and "GRANT" in s]
    # Only an operator removes anything: a version's alias or tag (each removal is audited).
    deleting = [s for s in statements if "GRANT" in s and "DELETE" in s]
    assert [s.split(" ON ")[1].split(" TO ") for s in deleting] == [
        ["`ledger`.`version_aliases`", "'modeltrail_operator'@'%';"],
        ["`ledger`.`version_tags`", "'modeltrail_operator'@'%';"],
    ]
    assert "GRANT SELECT ON `ledger`.`deployments` TO 'modeltrail_writer'@'%';" in statements
    assert (
        "GRANT SELECT, INSERT, UPDATE (`status`, `ended_at`) ON `ledger`.`deployments` TO 'modeltrail_operator'@'%';"
    ) in statements
    with pytest.raises(ValidationError, match="ledger; DROP"):
        grant_statements("ledger; DROP TABLE models")
    with pytest.raises(ValidationError, match="role name"):
        grant_statements("ledger", dialect="postgresql", writer='w"; DROP ROLE postgres; --')


def test_item14_db_grants_speaks_each_backends_language(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "grants", "--uri", "postgresql+psycopg://admin:s3cret@db/ledger"]) == 0
    printed = capsys.readouterr().out
    assert 'GRANT UPDATE (status, ended_at) ON TABLE "deployments" TO "modeltrail_operator";' in printed
    assert 'GRANT USAGE ON SEQUENCE "trainings_id_seq" TO "modeltrail_writer";' in printed
    assert "CREATE ROLE" in printed and "`" not in printed and "s3cret" not in printed
    assert 'CREATE TRIGGER modeltrail_audit_stamp BEFORE INSERT ON "audit_events"' in printed

    assert main(["db", "grants", "--uri", "mysql+pymysql://root:pw@127.0.0.1/ledger"]) == 0
    printed = capsys.readouterr().out
    # The mysql client needs a delimiter around trigger bodies; the printed script has them.
    assert "DELIMITER //" in printed and "END//\nDELIMITER ;" in printed

    modeltrail.Tracker(sqlite_url).close()
    assert main(["db", "grants", "--uri", sqlite_url]) == 2
    err = capsys.readouterr().err
    assert "SQLite has no users" in err and "database name" not in err
    with pytest.raises(ConfigurationError, match="SQLite has no users"):
        modeltrail.Tracker.grant_statements(sqlite_url)


# ------------------------------------------------------------------ real users on real servers
def _run_script(engine: Engine, statements: list[str]) -> None:
    """Run the printed statements as the admin, through the driver (no client-side parameter parsing)."""
    raw: Any = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement in statements:
            if not statement.startswith("--"):
                cursor.execute(statement)
        raw.commit()
    finally:
        raw.close()


@pytest.fixture(params=[b for b in ("mysql", "postgres") if b in BACKENDS])
def role_urls(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[dict[str, str]]:
    backend = request.param
    ledger = make_db_url(backend, tmp_path)
    db_url = next(ledger)
    url = make_url(db_url)
    suffix = uuid.uuid4().hex[:6]
    users = {role: f"mt_{role[:3]}_{suffix}" for role in ("writer", "operator", "analyst")}
    password = f"pw-{suffix}"
    modeltrail.Tracker(db_url).close()  # the schema, created by the owner
    admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
    try:
        if backend == "mysql":
            with admin.connect() as conn:
                for user in users.values():
                    for host in ("%", "localhost"):
                        conn.execute(text(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'"))
            for host in ("%", "localhost"):
                _run_script(admin, grant_statements(url.database or "", host=host, **users))
        else:
            _run_script(admin, grant_statements(url.database or "", dialect="postgresql", **users))
            with admin.connect() as conn:
                for user in users.values():
                    conn.execute(text(f"ALTER ROLE \"{user}\" PASSWORD '{password}'"))
        urls = {role: url.set(username=user, password=password).render_as_string(False) for role, user in users.items()}
        yield {"backend": backend, "admin": db_url, **urls, **{f"{r}_user": u for r, u in users.items()}}
    finally:
        modeltrail._store.close_all()
        admin.dispose()
        next(ledger, None)  # drops the database (PostgreSQL: with the privileges in it)
        cleanup = create_engine(url.set(database="mysql" if backend == "mysql" else "postgres"))
        with cleanup.connect() as conn:
            for user in users.values():
                if backend == "mysql":
                    conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%', '{user}'@'localhost'"))
                else:
                    conn.execute(text(f'DROP ROLE IF EXISTS "{user}"'))
            conn.commit()
        cleanup.dispose()


def test_each_role_does_its_job_and_is_refused_the_rest(role_urls: dict[str, str]) -> None:
    writer = modeltrail.Tracker(role_urls["writer"], spool=False)
    for lr in (0.1, 0.2):
        with (
            writer.training("churn", framework="sklearn", params={"lr": lr}, tags={"team": "risk"}) as run,
            run.stage("train"),
        ):
            run.log_metrics({"auc": 0.9, "loss": 0.3})
    assert [v.number for v in writer.versions("churn")] == [1, 2]
    assert [s.name for s in writer.trainings("churn")[1].stages] == ["train"]
    writer.evaluate("churn", version=2, dataset="holdout", metrics={"auc": 0.88})
    with pytest.raises(PermissionDeniedError, match="denied"):
        writer.deploy("churn", version=2, environment="production")

    operator = modeltrail.Tracker(role_urls["operator"], spool=False)
    operator.deploy("churn", version=1, environment="production", reason="first")
    operator.deploy("churn", version=2, environment="production", reason="better")
    operator.rollback("churn", environment="production", reason="regression")
    assert operator.deployment("churn", "production").version == 1
    operator.log_production_metrics("churn", "production", {"auc": 0.87, "latency_ms": 12.0})
    served = operator.production_metrics("churn", environment="production")
    assert sorted(p.metric for p in served) == ["auc", "latency_ms"]
    with pytest.raises(PermissionDeniedError):
        operator.training("churn")
    # `modeltrail serve` runs as the operator: its instance is recorded, beats, follows a deploy and ends.
    now = operator.deployment("churn", "production")
    instance = operator.start_serving(
        "churn", "production", deployment_id=now.id, host="127.0.0.1", port=8080, pid=1, heartbeat_s=60
    )
    operator.deploy("churn", version=2, environment="production", reason="again")
    operator.record_serving_switch(instance.id, operator.serving_heartbeat(instance.id).id)
    operator.end_serving(instance.id, reason="SIGTERM")
    assert (operator.serving_instance(instance.id).state, operator.serving_instance(instance.id).version) == (
        "stopped", 2
    )  # fmt: skip
    with pytest.raises(PermissionDeniedError):
        writer.start_serving("churn", "production", deployment_id=now.id, host="h", port=1, pid=1, heartbeat_s=60)

    analyst = modeltrail.Tracker(role_urls["analyst"], spool=False)
    assert [v.number for v in analyst.versions("churn")] == [1, 2]
    assert analyst.deployment("churn", "production").version == 2
    with pytest.raises(PermissionDeniedError) as info:
        analyst.training("churn")
    assert "pw-" not in str(info.value)
    with pytest.raises(PermissionDeniedError):
        analyst.deploy("churn", version=2, environment="staging")
    assert [d.version for d in analyst.deployments("churn", environment="staging")] == []

    # Every event names the database user who really made it.
    events = analyst.audit(limit=1000)
    by_action = {e.action: e.db_user for e in events}
    assert by_action["version.create"] == role_urls["writer_user"]
    assert {e.db_user for e in events if e.action.startswith("deployment.")} == {role_urls["operator_user"]}
    for tracker in (writer, operator, analyst):
        tracker.close()


def _refused(url: str, statements: list[str], params: dict[str, Any]) -> None:
    """Each statement, run as the user of ``url`` in its own transaction, is refused by the server."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                with pytest.raises(DBAPIError, match="denied") as info:
                    conn.execute(text(statement), params)
                assert info.value.orig is not None, statement
    finally:
        engine.dispose()


def _ids(admin_url: str) -> dict[str, Any]:
    engine = create_engine(admin_url)
    with engine.connect() as conn:
        one = lambda sql: conn.execute(text(sql)).scalar_one()  # noqa: E731
        ids = {
            "t1": one("SELECT training_id FROM versions WHERE number = 1"),
            "t2": one("SELECT training_id FROM versions WHERE number = 2"),
            "uuid1": one("SELECT t.uuid FROM trainings t JOIN versions v ON v.training_id = t.id WHERE v.number = 1"),
            "model": one("SELECT id FROM models WHERE name = 'churn'"),
            "v1": one("SELECT id FROM versions WHERE number = 1"),
            "ended": one("SELECT MIN(id) FROM deployments WHERE status <> 'active'"),
            "active": one("SELECT id FROM deployments WHERE status = 'active'"),
            "key": one("SELECT MIN(id) FROM metric_keys"),
            "failed": one("SELECT COALESCE(MAX(id), 0) FROM trainings WHERE status = 'failed'"),
        }
    engine.dispose()
    return ids


def _snapshot(admin_url: str) -> dict[str, Any]:
    engine = create_engine(admin_url)
    with engine.connect() as conn:
        rows = {
            table: [tuple(map(str, r)) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
            for table in ("models", "trainings", "params", "versions", "metric_summaries", "deployments", "datasets")
        }
    engine.dispose()
    return rows


def test_item14_every_rewrite_the_issue_names_is_refused(role_urls: dict[str, str], tmp_path: Path) -> None:
    writer = modeltrail.Tracker(role_urls["writer"], spool=False)
    data = modeltrail.Dataset.from_arrays([[1.0], [2.0]], [0, 1], name="train")
    for lr in (0.1, 0.2):
        artifact = tmp_path / f"churn-{lr}.pkl"
        artifact.write_bytes(b"model")
        with writer.training("churn", framework="sklearn", params={"lr": lr}, dataset=data) as run:
            run.log_metrics({"auc": 0.9})
            run.log_artifact(artifact)
    with pytest.raises(RuntimeError), writer.training("churn") as run:  # failed: not a version
        run.log_metrics({"auc": 0.95})
        raise RuntimeError("diverged")
    writer.close()
    operator = modeltrail.Tracker(role_urls["operator"], spool=False)
    operator.deploy("churn", version=1, environment="production", reason="first")
    operator.deploy("churn", version=2, environment="production", reason="better")
    operator.close()
    ids = _ids(role_urls["admin"])
    before = _snapshot(role_urls["admin"])
    mysql = role_urls["backend"] == "mysql"
    # The same rewrite through the upsert door: MariaDB does not check column privileges there.
    upsert_training = (
        "INSERT INTO trainings (id, uuid, model_id, status, started_at) "
        "VALUES (:t1, :uuid1, :model, 'x', '2020-01-01') "
        + (
            "ON DUPLICATE KEY UPDATE artifact_sha256 = 'evil', artifact_path = 'evil'"
            if mysql
            else "ON CONFLICT (uuid) DO UPDATE SET artifact_sha256 = 'evil', artifact_path = 'evil'"
        )
    )
    writer_refused = [
        "UPDATE versions SET artifact_path = 'evil' WHERE id = :v1",
        "UPDATE trainings SET artifact_sha256 = 'evil', artifact_path = 'evil' WHERE id = :t1",
        "UPDATE trainings SET status = 'failed' WHERE id = :t1",
        upsert_training,
        "UPDATE models SET name = 'renamed' WHERE id = :model",
        "UPDATE models SET framework = 'evil' WHERE id = :model",
        "UPDATE metric_summaries SET max_value = 99, last_value = 99 WHERE training_id = :t1",
        # The model of a version is set once, by making it: a training that is none stays off the leaderboard.
        "UPDATE metric_summaries SET model_id = NULL WHERE training_id = :t1",
        "UPDATE metric_summaries SET model_id = :model WHERE training_id = :failed",
        "UPDATE params SET value = '0.9', display = '0.9' WHERE training_id = :t1",
        "UPDATE params SET training_id = :t2 WHERE training_id = :t1",
        "UPDATE metric_keys SET name = 'renamed' WHERE id = :key",
        "UPDATE datasets SET digest = 'evil'",
        "UPDATE audit_events SET action = 'x'",
        "DELETE FROM audit_events",
        "DELETE FROM trainings WHERE id = :t1",
        "UPDATE deployments SET status = 'active' WHERE id = :ended",
        "INSERT INTO deployments (model_id, version_id, environment, status, action, deployed_at) "
        "VALUES (:model, :v1, 'production', 'active', 'deploy', '2020-01-01')",
    ]
    if mysql:  # without a column list MariaDB checks no column privilege: the guard refuses it
        writer_refused.append(
            "INSERT INTO trainings SELECT * FROM trainings WHERE id = :t1 "
            "ON DUPLICATE KEY UPDATE artifact_sha256 = 'evil'"
        )
        writer_refused.append(
            "INSERT INTO params (training_id, `key`, value, display) VALUES (:t1, 'lr', '0.9', '0.9') "
            "ON DUPLICATE KEY UPDATE value = '0.9', display = '0.9'"
        )
    _refused(role_urls["writer"], writer_refused, ids)
    operator_refused = [
        "UPDATE deployments SET deployed_by = 'someone else' WHERE id = :active",
        "UPDATE deployments SET deployed_at = '2001-01-01' WHERE id = :active",
        "UPDATE deployments SET reason = 'rewritten' WHERE id = :active",
        "UPDATE deployments SET status = 'active' WHERE id = :ended",
        "UPDATE deployments SET ended_at = '2001-01-01' WHERE id = :ended",
        "UPDATE trainings SET status = 'failed' WHERE id = :t1",
        "UPDATE versions SET artifact_path = 'evil' WHERE id = :v1",
        "UPDATE models SET name = 'renamed' WHERE id = :model",
        "UPDATE audit_events SET action = 'x'",
        "DELETE FROM deployments",
    ]
    if mysql:
        operator_refused.append(
            "INSERT INTO deployments (id, model_id, version_id, environment, status, action, deployed_at) "
            "VALUES (:active, :model, :v1, 'production', 'active', 'deploy', '2020-01-01') "
            "ON DUPLICATE KEY UPDATE reason = 'rewritten', deployed_by = 'someone else'"
        )
    _refused(role_urls["operator"], operator_refused, ids)
    _refused(
        role_urls["analyst"],
        [
            "UPDATE models SET name = 'renamed'",
            "INSERT INTO metric_keys (name) VALUES ('x')",
            "INSERT INTO audit_events (at, action, entity, entity_id) VALUES ('2001-01-01', 'x', 'model', '1')",
        ],
        ids,
    )
    assert _snapshot(role_urls["admin"]) == before

    # An audit event can be added, but it carries the real user and the server's time, not the ones given.
    engine = create_engine(role_urls["writer"])
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (at, action, entity, entity_id, db_user, os_user) "
                "VALUES ('2001-01-01 00:00:00', 'forged', 'model', '1', 'root', 'root')"
            )
        )
    engine.dispose()
    forged = [
        e for e in modeltrail.Tracker(role_urls["analyst"], spool=False).audit(limit=1000) if e.action == "forged"
    ]
    assert len(forged) == 1
    assert forged[0].db_user == role_urls["writer_user"]
    assert abs(forged[0].at - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)
