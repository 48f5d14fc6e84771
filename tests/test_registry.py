"""The registry: deployments and their timelines, rollbacks, comparisons, leaderboards, production metrics."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

import modeltrail
from modeltrail import Dataset, NotFoundError, ValidationError


def train(
    tracker: modeltrail.Tracker,
    model: str,
    params: Mapping[str, Any],
    curves: Mapping[str, Sequence[float]],
    *,
    dataset: Dataset | None = None,
    artifact: str | None = None,
) -> int:
    """One finished training with one point per step of each curve; returns its version number."""
    with tracker.training(model, framework="sklearn", model_type="classifier", params=params, dataset=dataset) as run:
        for key, values in curves.items():
            for step, value in enumerate(values):
                run.log_metric(key, value, step=step)
        if artifact is not None:
            run.log_artifact(artifact)
    assert run.version is not None
    return run.version.number


def three_versions(tracker: modeltrail.Tracker, model: str = "churn-rf") -> None:
    for lr in (0.1, 0.2, 0.3):
        train(tracker, model, {"lr": lr}, {"val_auc": [0.5, lr + 0.5]})


def timeline(tracker: modeltrail.Tracker, model: str = "churn-rf", env: str = "production") -> list[tuple]:
    return [(d.version, d.action, d.status) for d in tracker.deployments(model, environment=env)]


def deployment_events(tracker: modeltrail.Tracker) -> list[str]:
    return [e.action for e in reversed(tracker.audit(action="deployment.*"))]


# ------------------------------------------------------------------ deploy
def test_deploy_supersedes_the_previous_deployment_and_keeps_it(tracker: modeltrail.Tracker) -> None:
    three_versions(tracker)
    first = tracker.deploy("churn-rf", 1, "production", endpoint="https://api/v1", reason="launch")
    second = tracker.deploy("churn-rf", version=2, environment="production", reason="better auc", deployed_by="ana")
    staging = tracker.deploy("churn-rf", 3, "staging")

    now = tracker.deployment("churn-rf", "production")
    assert now is not None and (now.id, now.version, now.status) == (second.id, 2, "active")
    assert now.replaces_id == first.id and now.deployed_by == "ana" and now.reason == "better auc"
    old = tracker.deployments("churn-rf", environment="production")[0]
    assert (old.id, old.status, old.endpoint, old.reason) == (first.id, "superseded", "https://api/v1", "launch")
    assert old.ended_at is not None and old.ended_at >= old.deployed_at
    assert old.deployed_by  # the OS user when nobody is named
    assert timeline(tracker) == [(1, "deploy", "superseded"), (2, "deploy", "active")]
    other = tracker.deployment("churn-rf", "staging")
    assert other is not None and (other.id, other.version, other.replaces_id) == (staging.id, 3, None)
    assert tracker.deployment("churn-rf", "canary") is None


def test_deploying_what_does_not_exist_is_an_error_that_changes_nothing(tracker: modeltrail.Tracker) -> None:
    three_versions(tracker)
    tracker.deploy("churn-rf", 1, "production")
    before = tracker.deployments()
    events = deployment_events(tracker)
    with pytest.raises(NotFoundError, match="no version 9"):
        tracker.deploy("churn-rf", 9, "production")
    with pytest.raises(NotFoundError, match="no model 'nope'"):
        tracker.deploy("nope", 1, "production")
    with pytest.raises(NotFoundError):
        tracker.deploy("churn-rf", 2**40, "production")
    for env in ("", " production", "x" * 65, None):
        with pytest.raises(ValidationError):
            tracker.deploy("churn-rf", 2, env)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        tracker.deploy("churn-rf", "2", "production")  # type: ignore[arg-type]
    assert tracker.deployments() == before
    assert deployment_events(tracker) == events


# ---------------------------------------------------------------- rollback
def test_rollbacks_walk_back_then_refuse(tracker: modeltrail.Tracker) -> None:
    three_versions(tracker)
    d1, d2, d3 = (tracker.deploy("churn-rf", n, "production") for n in (1, 2, 3))

    r1 = tracker.rollback("churn-rf", "production", reason="v3 drifted")
    assert (r1.version, r1.action, r1.status, r1.rollback_of_id, r1.replaces_id) == (
        2,
        "rollback",
        "active",
        d3.id,
        d3.id,
    )
    assert r1.reason == "v3 drifted"
    r2 = tracker.rollback("churn-rf", "production")
    assert (r2.version, r2.rollback_of_id) == (1, r1.id)
    assert tracker.deployment("churn-rf", "production").id == r2.id  # type: ignore[union-attr]
    assert timeline(tracker) == [
        (1, "deploy", "superseded"),
        (2, "deploy", "superseded"),
        (3, "deploy", "rolled_back"),
        (2, "rollback", "rolled_back"),
        (1, "rollback", "active"),
    ]

    before, events = tracker.deployments(), deployment_events(tracker)
    with pytest.raises(NotFoundError, match="nothing to roll back to"):
        tracker.rollback("churn-rf", "production")
    assert tracker.deployments() == before and deployment_events(tracker) == events
    with pytest.raises(NotFoundError, match="nothing of model 'churn-rf' is deployed in 'staging'"):
        tracker.rollback("churn-rf", "staging")
    assert d1.id < d2.id < d3.id


def test_rollback_after_a_new_deploy_returns_to_what_served_before_it(tracker: modeltrail.Tracker) -> None:
    three_versions(tracker)
    tracker.deploy("churn-rf", 1, "production")
    tracker.deploy("churn-rf", 2, "production")
    assert tracker.rollback("churn-rf", "production").version == 1
    tracker.deploy("churn-rf", 3, "production")
    assert tracker.rollback("churn-rf", "production").version == 1
    with pytest.raises(NotFoundError, match="nothing to roll back to"):
        tracker.rollback("churn-rf", "production")


def test_rollback_restores_the_endpoint_and_ignores_other_environments(tracker: modeltrail.Tracker) -> None:
    three_versions(tracker)
    tracker.deploy("churn-rf", 1, "production", endpoint="https://prod/v1")
    tracker.deploy("churn-rf", 3, "staging")
    tracker.deploy("churn-rf", 2, "production", endpoint="https://prod/v2")
    back = tracker.rollback("churn-rf", "production")
    assert (back.version, back.endpoint) == (1, "https://prod/v1")
    assert tracker.deployment("churn-rf", "staging").version == 3  # type: ignore[union-attr]


# ---------------------------------------------------------------- undeploy
def test_undeploy_retires_and_is_recorded(tracker: modeltrail.Tracker) -> None:
    three_versions(tracker)
    with pytest.raises(NotFoundError, match="nothing of model 'churn-rf' is deployed"):
        tracker.undeploy("churn-rf", "production")
    d = tracker.deploy("churn-rf", 2, "production")
    with pytest.raises(ValidationError, match="serves version 2 of 'churn-rf', not version 1"):
        tracker.undeploy("churn-rf", "production", version=1)
    assert tracker.deployment("churn-rf", "production").id == d.id  # type: ignore[union-attr]

    gone = tracker.undeploy("churn-rf", "production", version=2, reason="sunset", deployed_by="ops")
    assert (gone.action, gone.status, gone.replaces_id, gone.version, gone.reason) == (
        "undeploy", "retired", d.id, 2, "sunset",
    )  # fmt: skip
    assert tracker.deployment("churn-rf", "production") is None
    assert timeline(tracker) == [(2, "deploy", "retired"), (2, "undeploy", "retired")]
    assert tracker.environments("churn-rf", 2) == []
    with pytest.raises(NotFoundError):
        tracker.rollback("churn-rf", "production")


def test_every_deploy_rollback_and_undeploy_writes_an_audit_event(tracker: modeltrail.Tracker) -> None:
    three_versions(tracker)
    d1 = tracker.deploy("churn-rf", 1, "production", reason="first")
    d2 = tracker.deploy("churn-rf", 2, "production")
    r = tracker.rollback("churn-rf", "production", reason="bad")
    u = tracker.undeploy("churn-rf", "production")
    events = list(reversed(tracker.audit(action="deployment.*")))
    assert [(e.action, e.entity, e.entity_id) for e in events] == [
        ("deployment.deploy", "deployment", str(d1.id)),
        ("deployment.deploy", "deployment", str(d2.id)),
        ("deployment.rollback", "deployment", str(r.id)),
        ("deployment.undeploy", "deployment", str(u.id)),
    ]
    first, second, rollback, undeploy = events
    assert first.before is None and first.after["version"] == 1 and first.after["reason"] == "first"
    assert second.before["deployment_id"] == d1.id and second.before["version"] == 1
    assert (rollback.before["version"], rollback.after["version"], rollback.after["reason"]) == (2, 1, "bad")
    assert undeploy.before["deployment_id"] == r.id and undeploy.after["status"] == "retired"
    assert all(e.os_user and e.at for e in events)
    assert [e.entity_id for e in tracker.audit(entity="deployment", entity_id=d2.id)] == [str(d2.id)]
    assert tracker.audit(action="deployment.deploy", limit=1)[0].entity_id == str(d2.id)


# ------------------------------------------------------ where and when
def test_which_environments_serve_a_version_and_what_served_when(tracker: modeltrail.Tracker) -> None:
    three_versions(tracker)
    t0 = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.02)
    tracker.deploy("churn-rf", 1, "production")
    time.sleep(0.02)
    t1 = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.02)
    tracker.deploy("churn-rf", 2, "production")
    tracker.deploy("churn-rf", 1, "staging")
    tracker.deploy("churn-rf", 1, "canary")
    time.sleep(0.02)
    t2 = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.02)
    assert tracker.environments("churn-rf", 1) == ["canary", "staging"]
    assert tracker.environments("churn-rf", 2) == ["production"]
    assert tracker.environments("churn-rf", 3) == []
    tracker.undeploy("churn-rf", "production")

    assert tracker.deployment("churn-rf", "production", at=t0) is None
    assert tracker.deployment("churn-rf", "production", at=t1).version == 1  # type: ignore[union-attr]
    assert tracker.deployment("churn-rf", "production", at=t2).version == 2  # type: ignore[union-attr]
    assert tracker.deployment("churn-rf", "production", at=dt.datetime.now(dt.timezone.utc)) is None
    as_of_yesterday = tracker.deployment("churn-rf", "staging", at=dt.date.today() - dt.timedelta(days=1))
    assert as_of_yesterday is None
    assert tracker.deployment("churn-rf", "staging", at=dt.datetime.now(dt.timezone.utc).date()).version == 1  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="naive datetime"):
        tracker.deployment("churn-rf", "production", at=dt.datetime.now())
    active = tracker.deployments("churn-rf", status="active")
    assert sorted((d.environment, d.version) for d in active) == [("canary", 1), ("staging", 1)]
    assert [d.environment for d in tracker.deployments("churn-rf", version=2)] == ["production", "production"]


def test_concurrent_deploys_to_one_environment_leave_exactly_one_active(db_url: str) -> None:
    tracker = modeltrail.Tracker(db_url)
    n = 6
    for i in range(n):
        train(tracker, "race", {"i": i}, {"auc": [0.5]})
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def deploy(version: int) -> None:
        try:
            barrier.wait(timeout=30)
            tracker.deploy("race", version, "production")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=deploy, args=(v,)) for v in range(1, n + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    rows = tracker.deployments("race", environment="production")
    assert len(rows) == n
    assert [d.status for d in rows].count("active") == 1
    assert rows[-1].status == "active"
    # One chain: each deployment superseded exactly the one before it, none was replaced twice.
    assert [d.replaces_id for d in rows] == [None, *(d.id for d in rows[:-1])]
    assert sorted(d.version for d in rows) == list(range(1, n + 1))
    tracker.close()


# ------------------------------------------------------------- comparisons
def test_compare_reports_params_metrics_dataset_duration_and_code(tracker: modeltrail.Tracker, tmp_path) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=tmp_path, check=True,
            capture_output=True,
        )  # fmt: skip

    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "one")
    old_data = Dataset(name="churn", digest="a" * 64, n_rows=100)
    new_data = Dataset(name="churn", digest="b" * 64, n_rows=120)
    train(
        tracker, "churn-rf", {"lr": 0.1, "depth": 3, "old": "x"},
        {"val_auc": [0.7, 0.9, 0.8], "val_loss": [0.5, 0.2, 0.3], "only_old": [1.0]}, dataset=old_data,
    )  # fmt: skip
    git("commit", "-q", "--allow-empty", "-m", "two")
    train(
        tracker, "churn-rf", {"lr": 0.2, "depth": 3, "trees": 10},
        {"val_auc": [0.75, 0.85], "val_loss": [0.4, 0.25], "only_new": [2.0]}, dataset=new_data,
    )  # fmt: skip

    c = tracker.compare("churn-rf", 1, 2)
    assert (c.model, c.a, c.b) == ("churn-rf", 1, 2)
    assert c.params == {"added": {"trees": 10}, "removed": {"old": "x"}, "changed": {"lr": {"old": 0.1, "new": 0.2}}}
    by_key = {m.key: m for m in c.metrics}
    assert sorted(by_key) == ["val_auc", "val_loss"]
    auc, loss = by_key["val_auc"], by_key["val_loss"]
    assert (auc.mode, auc.last_a, auc.last_b, auc.best_a, auc.best_b) == ("max", 0.8, 0.85, 0.9, 0.85)
    assert auc.last_delta == pytest.approx(0.05) and auc.best_delta == pytest.approx(-0.05)
    assert (loss.mode, loss.best_a, loss.best_b) == ("min", 0.2, 0.25)
    assert loss.best_delta == pytest.approx(0.05) and loss.last_delta == pytest.approx(-0.05)
    assert (c.metrics_only_a, c.metrics_only_b) == (["only_old"], ["only_new"])
    assert c.dataset_changed and c.dataset_a.digest == "a" * 64 and c.dataset_b.digest == "b" * 64  # type: ignore[union-attr]
    assert c.duration_delta == pytest.approx(c.duration_b - c.duration_a)  # type: ignore[operator]
    assert c.code_changed and c.commit_a and c.commit_b and c.commit_a != c.commit_b

    same = tracker.compare("churn-rf", 2, 2)
    assert same.params == {"added": {}, "removed": {}, "changed": {}}
    assert not same.dataset_changed and not same.code_changed
    assert tracker.compare("churn-rf", 1, 2, modes={"val_auc": "min"}).metrics[0].best_a == 0.7
    with pytest.raises(NotFoundError, match="no version 3"):
        tracker.compare("churn-rf", 1, 3)
    with pytest.raises(ValidationError):
        tracker.compare("churn-rf", 1, 2, modes={"val_auc": "highest"})


def test_best_uses_the_whole_history_and_last_uses_the_final_value(tracker: modeltrail.Tracker) -> None:
    # v1 peaks early then degrades; v2 improves steadily and ends higher than v1 ended.
    train(tracker, "m", {"v": 1}, {"val_auc": [0.6, 0.95, 0.80], "val_loss": [0.9, 0.1, 0.5]})
    train(tracker, "m", {"v": 2}, {"val_auc": [0.7, 0.85, 0.90], "val_loss": [0.8, 0.4, 0.3]})
    train(tracker, "m", {"v": 3}, {"val_auc": [0.5, 0.92, 0.85], "val_loss": [1.0, 0.6, 0.4]})
    train(tracker, "m", {"v": 4}, {"other": [1.0]})  # never logged val_auc: not ranked

    best = tracker.best_version("m", metric="val_auc", mode="max", by="best")
    assert (best.version, best.value, best.step, best.last) == (1, 0.95, 1, 0.80)
    last = tracker.best_version("m", metric="val_auc", mode="max", by="last")
    assert (last.version, last.value, last.step) == (2, 0.90, 2)
    assert tracker.best_version("m", metric="val_loss", mode="min").version == 1
    assert tracker.best_version("m", metric="val_loss", mode="min", by="last").version == 2

    board = tracker.leaderboard("m", "val_auc", mode="max", by="best")
    assert [(e.rank, e.version, e.value) for e in board] == [(1, 1, 0.95), (2, 3, 0.92), (3, 2, 0.90)]
    by_last = tracker.leaderboard("m", "val_auc", by="last")
    assert [(e.rank, e.version) for e in by_last] == [(1, 2), (2, 3), (3, 1)]
    assert [e.version for e in tracker.leaderboard("m", "val_auc", mode="min")] == [3, 1, 2]  # min over history
    assert [e.version for e in tracker.leaderboard("m", "val_auc", limit=2)] == [1, 3]
    frame = board.to_pandas()
    assert list(frame["version"]) == [1, 3, 2]

    assert tracker.leaderboard("m", "never_logged") == []
    with pytest.raises(NotFoundError, match="never_logged"):
        tracker.best_version("m", metric="never_logged")
    with pytest.raises(ValidationError):
        tracker.leaderboard("m", "val_auc", mode="highest")
    with pytest.raises(ValidationError):
        tracker.leaderboard("m", "val_auc", by="first")


def test_leaderboard_ties_share_a_rank_nan_ranks_last_and_deployed_versions_are_marked(
    tracker: modeltrail.Tracker,
) -> None:
    train(tracker, "m", {"v": 1}, {"score": [0.5]})
    train(tracker, "m", {"v": 2}, {"score": [math.nan]})
    train(tracker, "m", {"v": 3}, {"score": [0.5]})
    train(tracker, "m", {"v": 4}, {"score": [math.inf]})
    tracker.deploy("m", 3, "production")
    board = tracker.leaderboard("m", "score", by="last")
    assert [(e.rank, e.version) for e in board] == [(1, 4), (2, 1), (2, 3), (4, 2)]
    assert board[0].value == math.inf and math.isnan(board[3].value)
    assert [e.environments for e in board] == [[], [], ["production"], []]
    assert [e.version for e in tracker.leaderboard("m", "score", mode="min", by="last")] == [1, 3, 4, 2]


def test_metric_histories_ready_for_plotting(tracker: modeltrail.Tracker) -> None:
    train(tracker, "m", {"v": 1}, {"loss": [0.9, 0.5], "acc": [0.6, 0.7]})
    train(tracker, "m", {"v": 2}, {"loss": [0.8, 0.4, 0.3]})
    tracker.deploy("m", 2, "production")
    curves = tracker.metric_curves("m", "loss")
    assert [(p.version, p.step, p.value) for p in curves] == [
        (1, 0, 0.9),
        (1, 1, 0.5),
        (2, 0, 0.8),
        (2, 1, 0.4),
        (2, 2, 0.3),
    ]
    assert [p.version for p in tracker.metric_curves("m", "loss", versions=[2])] == [2, 2, 2]
    frame = curves.to_pandas().pivot(index="step", columns="version", values="value")
    assert frame.loc[2, 2] == 0.3 and math.isnan(frame.loc[2, 1])

    one = tracker.version_history("m", 1)
    assert [(p.metric, p.step, p.value) for p in one] == [
        ("acc", 0, 0.6),
        ("acc", 1, 0.7),
        ("loss", 0, 0.9),
        ("loss", 1, 0.5),
    ]
    assert {p.version for p in tracker.version_history("m")} == {2}
    assert [p.metric for p in tracker.version_history("m", 1, metrics=["acc"])] == ["acc", "acc"]

    per_version = tracker.metric_by_version("m", "loss")
    assert [(r.version, r.mode, r.last, r.best, r.environments) for r in per_version] == [
        (1, "min", 0.5, 0.5, []),
        (2, "min", 0.3, 0.3, ["production"]),
    ]
    assert tracker.metric_curves("m", "missing") == []


# -------------------------------------------------------------- details
def test_find_and_show_models(tracker: modeltrail.Tracker, tmp_path) -> None:
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    data = Dataset(name="churn", digest="c" * 64, n_rows=10)
    train(tracker, "churn-rf", {"lr": 0.1}, {"auc": [0.7]}, dataset=data, artifact=str(artifact))
    train(tracker, "churn-rf", {"lr": 0.2}, {"auc": [0.8]})
    with tracker.training("churn-lgbm", framework="lightgbm", model_type="classifier", tags={"team": "risk"}):
        pass
    tracker.deploy("churn-rf", 1, "production")

    assert [m.name for m in tracker.models(framework="sklearn")] == ["churn-rf"]
    assert [m.name for m in tracker.models(model_type="classifier")] == ["churn-lgbm", "churn-rf"]
    assert [m.name for m in tracker.models(tag="team=risk")] == ["churn-lgbm"]
    assert [m.name for m in tracker.models(name="rf")] == ["churn-rf"]
    assert tracker.models(name="%") == []
    model_id = tracker.model("churn-rf").id
    assert tracker.model(model_id).name == "churn-rf"

    details = tracker.show("churn-rf")
    assert details.model.name == "churn-rf" and details.model.latest_version == 2
    assert [v.version.number for v in details.versions] == [1, 2]
    v1 = details.versions[0]
    assert v1.training.params == {"lr": 0.1} and v1.training.metrics["auc"].last == 0.7
    assert v1.training.dataset is not None and v1.training.dataset.digest == "c" * 64
    assert v1.training.artifact_sha256 and v1.training.artifact_size == len(b"weights")
    assert v1.environments == ["production"] and details.versions[1].environments == []
    assert [(d.environment, d.version) for d in details.deployments] == [("production", 1)]
    with pytest.raises(NotFoundError):
        tracker.show("nope")


# --------------------------------------------------------- production metrics
def test_production_metrics_against_the_serving_version(tracker: modeltrail.Tracker) -> None:
    train(tracker, "m", {"v": 1}, {"auc": [0.7, 0.9, 0.8]})
    train(tracker, "m", {"v": 2}, {"auc": [0.85]})
    with pytest.raises(NotFoundError, match="nothing of model 'm' is deployed in 'production'"):
        tracker.log_production_metrics("m", "production", {"auc": 0.5})
    d1 = tracker.deploy("m", 1, "production")
    t = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    assert tracker.log_production_metrics("m", "production", {"auc": 0.75, "latency_ms": 12}, measured_at=t).id == d1.id
    d2 = tracker.deploy("m", 2, "production")
    tracker.log_production_metrics("m", "production", {"auc": 0.8}, measured_at=t + dt.timedelta(days=1))
    # a late measurement of the old deployment
    tracker.log_production_metrics(
        "m", "production", {"auc": 0.7}, measured_at=t + dt.timedelta(hours=1), deployment_id=d1.id
    )

    rows = tracker.compare_production("m", "production", "auc")
    assert [(r.deployment_id, r.version, r.value, r.training_last, r.training_best) for r in rows] == [
        (d1.id, 1, 0.75, 0.8, 0.9),
        (d1.id, 1, 0.7, 0.8, 0.9),
        (d2.id, 2, 0.8, 0.85, 0.85),
    ]
    assert [r.delta_last for r in rows] == pytest.approx([-0.05, -0.1, -0.05])
    assert rows.to_pandas()["measured_at"].is_monotonic_increasing
    latency = tracker.production_metrics("m", metric="latency_ms")
    assert [(p.version, p.value, p.measured_at) for p in latency] == [(1, 12.0, t)]
    assert tracker.compare_production("m", "production", "latency_ms")[0].training_last is None
    assert len(tracker.production_metrics("m", environment="production", version=2)) == 1

    before = tracker.production_metrics("m")
    with pytest.raises(ValidationError):
        tracker.log_production_metrics("m", "production", {"auc": "high"})
    with pytest.raises(ValidationError):
        tracker.log_production_metrics("m", "production", {"auc": 0.5}, measured_at=dt.datetime(2030, 1, 1))
    with pytest.raises(NotFoundError):
        tracker.log_production_metrics("m", "staging", {"auc": 0.5}, deployment_id=d1.id)
    assert tracker.production_metrics("m") == before
