"""Least privilege on MariaDB: each role can do its job and is refused the rest, clearly."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import modeltrail
from modeltrail._errors import PermissionDeniedError, ValidationError
from modeltrail._grants import grant_statements


def test_grant_statements_cover_every_table_and_never_audit_updates() -> None:
    statements = grant_statements("ledger")
    assert "GRANT SELECT, INSERT ON `ledger`.`audit_events` TO 'modeltrail_writer'@'%';" in statements
    assert not [s for s in statements if "audit_events" in s and ("UPDATE" in s or "DELETE" in s)]
    assert not [s for s in statements if "DELETE" in s]
    assert "GRANT SELECT ON `ledger`.`deployments` TO 'modeltrail_writer'@'%';" in statements
    with pytest.raises(ValidationError, match="ledger; DROP"):
        grant_statements("ledger; DROP TABLE models")


@pytest.fixture
def role_urls(mysql_url: str):
    url = make_url(mysql_url)
    suffix = uuid.uuid4().hex[:6]
    users = {role: f"mt_{role[:3]}_{suffix}" for role in ("writer", "operator", "analyst")}
    admin = create_engine(mysql_url, isolation_level="AUTOCOMMIT")
    modeltrail.Tracker(mysql_url).close()  # the schema, created by the owner
    with admin.connect() as conn:
        for user in users.values():
            conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{suffix}'"))
            conn.execute(text(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY 'pw-{suffix}'"))
        for host in ("%", "localhost"):
            for statement in grant_statements(url.database or "", host=host, **users):
                if not statement.startswith("--"):
                    conn.execute(text(statement))
    try:
        yield {
            role: url.set(username=user, password=f"pw-{suffix}").render_as_string(False)
            for role, user in users.items()
        }
    finally:
        modeltrail._store.close_all()
        with admin.connect() as conn:
            for user in users.values():
                conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
                conn.execute(text(f"DROP USER IF EXISTS '{user}'@'localhost'"))
        admin.dispose()


def test_each_role_does_its_job_and_is_refused_the_rest(role_urls: dict[str, str]) -> None:
    writer = modeltrail.Tracker(role_urls["writer"], spool=False)
    for lr in (0.1, 0.2):
        with writer.training("churn", framework="sklearn", params={"lr": lr}) as run, run.stage("train"):
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
    with pytest.raises(PermissionDeniedError):
        operator.training("churn")

    analyst = modeltrail.Tracker(role_urls["analyst"], spool=False)
    assert [v.number for v in analyst.versions("churn")] == [1, 2]
    assert analyst.deployment("churn", "production").version == 1
    with pytest.raises(PermissionDeniedError) as info:
        analyst.training("churn")
    assert "pw-" not in str(info.value)
    with pytest.raises(PermissionDeniedError):
        analyst.deploy("churn", version=2, environment="staging")
    assert [d.version for d in analyst.deployments("churn", environment="staging")] == []

    # The audit trail cannot be rewritten by any of them.
    for role in ("writer", "operator", "analyst"):
        engine = create_engine(role_urls[role])
        with engine.connect() as conn:
            for statement in ("DELETE FROM audit_events", "UPDATE audit_events SET action = 'x'"):
                with pytest.raises(Exception, match="denied"):
                    conn.execute(text(statement))
        engine.dispose()
