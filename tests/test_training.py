"""The core logger's lifecycle, as a user sees it through the database."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import modeltrail
from modeltrail import ValidationError


def test_training_records_params_metrics_artifact_dataset_and_version(tracker: modeltrail.Tracker, tmp_path) -> None:
    X = np.arange(40, dtype=float).reshape(10, 4)
    y = np.arange(10) % 2
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights" * 100)
    with tracker.training(
        "churn-rf",
        framework="sklearn",
        model_type="classifier",
        params={"n_estimators": 200, "max_depth": 8, "criterion": "gini"},
        dataset=modeltrail.Dataset.from_arrays(X, y, name="churn-2026-11"),
        seeds={"numpy": 42},
    ) as run:
        run.log_metric("val_auc", 0.91, step=3)
        run.log_metrics({"accuracy": 0.88, "loss": 0.31})
        run.log_artifact(artifact)
    assert run.version is not None and run.version.number == 1

    (record,) = tracker.trainings("churn-rf")
    assert record.status == "finished" and record.version == 1
    assert record.params == {"n_estimators": 200, "max_depth": 8, "criterion": "gini"}
    assert record.metrics["val_auc"].last == 0.91 and record.metrics["val_auc"].last_step == 3
    assert record.metrics["accuracy"].last == 0.88
    assert record.duration_s is not None and record.duration_s >= 0
    assert record.artifact_path == str(artifact) and record.artifact_size == 700
    import hashlib

    assert record.artifact_sha256 == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert record.dataset is not None and record.dataset.name == "churn-2026-11"
    assert record.dataset.n_rows == 10 and record.dataset.n_features == 4
    assert record.context["seeds"] == {"numpy": 42}
    assert record.context["packages"]["sqlalchemy"]
    assert record.host and record.run_by
    model = tracker.model("churn-rf")
    assert (model.framework, model.model_type, model.latest_version) == ("sklearn", "classifier", 1)
    assert tracker.model(model.id).name == "churn-rf"


def test_each_retrain_is_the_next_version_with_param_diff(tracker: modeltrail.Tracker) -> None:
    for depth, extra in ((8, {}), (10, {"min_samples_leaf": 2}), (10, {})):
        with tracker.training("m", params={"max_depth": depth, "n": 1, **extra}):
            pass
    versions = tracker.versions("m")
    assert [v.number for v in versions] == [1, 2, 3]
    assert [v.parent_number for v in versions] == [None, 1, 2]
    assert versions[1].param_diff == {
        "added": {"min_samples_leaf": 2},
        "removed": {},
        "changed": {"max_depth": {"old": 8, "new": 10}},
    }
    assert versions[2].param_diff == {"added": {}, "removed": {"min_samples_leaf": 2}, "changed": {}}


def test_failed_block_records_failure_creates_no_version_and_propagates(tracker: modeltrail.Tracker) -> None:
    with tracker.training("m", params={"a": 1}):
        pass
    with pytest.raises(ZeroDivisionError), tracker.training("m", params={"a": 2}) as run:
        run.log_metric("loss", 1.0)
        1 / 0  # noqa: B018
    assert run.status == "failed" and run.version is None
    records = tracker.trainings("m")
    assert [r.status for r in records] == ["finished", "failed"]
    assert "ZeroDivisionError" in (records[1].error or "")
    assert records[1].metrics["loss"].last == 1.0  # what was logged before the failure is kept
    assert [v.number for v in tracker.versions("m")] == [1]
    with tracker.training("m"):
        pass
    assert [v.number for v in tracker.versions("m")] == [1, 2]


def test_nonfinite_values_round_trip_in_history_summary_and_params(tracker: modeltrail.Tracker) -> None:
    with tracker.training("m", params={"alpha": math.inf, "beta": -math.inf, "gamma": math.nan}) as run:
        for step, value in enumerate([1.0, math.nan, math.inf, -math.inf, 2.0]):
            run.log_metric("x", value, step=step)
    history = tracker.metric_history(run, "x")
    values = [p.value for p in history]
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == math.inf and values[3] == -math.inf
    assert values[4] == 2.0
    summary = tracker.trainings("m")[0].metrics["x"]
    assert (summary.min, summary.min_step, summary.max, summary.max_step) == (-math.inf, 3, math.inf, 2)
    assert summary.last == 2.0 and summary.count == 5
    params = tracker.trainings("m")[0].params
    assert params["alpha"] == math.inf and params["beta"] == -math.inf and math.isnan(params["gamma"])


def test_numpy_and_torch_scalars_stored_as_floats(tracker: modeltrail.Tracker) -> None:
    torch = pytest.importorskip("torch")
    with tracker.training("m") as run:
        run.log_metric("np", np.float32(0.5))
        run.log_metric("np64", np.int64(7))
        run.log_metric("torch", torch.tensor(0.25))
    metrics = tracker.trainings("m")[0].metrics
    assert (metrics["np"].last, metrics["np64"].last, metrics["torch"].last) == (0.5, 7.0, 0.25)


def test_metric_history_in_step_order_with_auto_steps_and_duplicates(tracker: modeltrail.Tracker) -> None:
    with tracker.training("m") as run:
        for value in (3.0, 2.0, 1.0):
            run.log_metric("loss", value)  # steps 0, 1, 2
        run.log_metric("loss", 0.5, step=1)  # a duplicate step is kept, not overwritten
    points = tracker.metric_history("m", "loss")
    assert [(p.step, p.value) for p in points] == [(0, 3.0), (1, 2.0), (1, 0.5), (2, 1.0)]
    summary = tracker.trainings("m")[0].metrics["loss"]
    assert (summary.last_step, summary.last, summary.min, summary.count) == (2, 1.0, 0.5, 4)
    assert tracker.metric_history("m", "no-such-metric") == []


def test_secret_params_redacted_in_database(tracker: modeltrail.Tracker) -> None:
    with tracker.training("m", params={"db_password": "hunter2", "api_token": "abc", "lr": 0.1}):
        pass
    params = tracker.trainings("m")[0].params
    assert params == {"db_password": "***", "api_token": "***", "lr": 0.1}


def test_log_params_refuses_to_overwrite(tracker: modeltrail.Tracker) -> None:
    with tracker.training("m", params={"lr": 0.1}) as run:
        run.log_params({"lr": 0.1, "epochs": 3})
        with pytest.raises(ValidationError, match="'lr'"):
            run.log_param("lr", 0.2)
    assert tracker.trainings("m")[0].params == {"lr": 0.1, "epochs": 3}


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda run: run.log_metric(3, 1.0), "metric key must be a string"),
        (lambda run: run.log_metric("", 1.0), "1 to 255"),
        (lambda run: run.log_metric("k", 1.0, step=-1), "-1"),
        (lambda run: run.log_metric("k", 1.0, step=1.5), "1.5"),
        (lambda run: run.log_metric("k", 1.0, step=True), "True"),
        (lambda run: run.log_metric("k", "high"), "'high'"),
        (lambda run: run.log_metrics([1, 2]), r"\[1, 2\]"),
        (lambda run: run.log_artifact("/no/such/file"), "/no/such/file"),
    ],
)
def test_bad_input_is_a_clear_error_and_keeps_what_was_logged(tracker: modeltrail.Tracker, call, match) -> None:
    with tracker.training("m") as run:
        run.log_metric("ok", 1.0)
        with pytest.raises(ValidationError, match=match):
            call(run)
    record = tracker.trainings("m")[0]
    assert record.status == "finished" and record.metrics["ok"].last == 1.0


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, " padded", None, 42])
def test_bad_model_names_rejected(tracker: modeltrail.Tracker, name) -> None:
    with pytest.raises(ValidationError):
        tracker.training(name)
    assert tracker.models() == []


def test_logging_after_finish_is_an_error(tracker: modeltrail.Tracker) -> None:
    with tracker.training("m") as run:
        pass
    with pytest.raises(ValidationError, match="finished"):
        run.log_metric("late", 1.0)


def test_active_training_inside_block(tracker: modeltrail.Tracker) -> None:
    assert modeltrail.active_training() is None
    with tracker.training("m") as run:
        assert modeltrail.active_training() is run
        with tracker.training("inner") as inner:
            assert modeltrail.active_training() is inner
        assert modeltrail.active_training() is run
    assert modeltrail.active_training() is None


def test_queries_filter_by_framework_and_type(tracker: modeltrail.Tracker) -> None:
    for name, framework, kind in (
        ("a", "sklearn", "classifier"),
        ("b", "keras", "classifier"),
        ("c", "sklearn", "regressor"),
    ):
        with tracker.training(
            name, framework=framework, model_type=kind, tags={"team": "risk"} if name == "a" else None
        ):
            pass
    assert [m.name for m in tracker.models(framework="sklearn")] == ["a", "c"]
    assert [m.name for m in tracker.models(model_type="classifier")] == ["a", "b"]
    assert [m.name for m in tracker.models(framework="sklearn", model_type="regressor")] == ["c"]
    assert [m.name for m in tracker.models(tag="team=risk")] == ["a"]
    with pytest.raises(modeltrail.NotFoundError, match="'zzz'"):
        tracker.model("zzz")
    frame = tracker.models().to_pandas()
    assert list(frame["name"]) == ["a", "b", "c"]


def test_git_context_captured_inside_a_repository(tracker: modeltrail.Tracker, tmp_path) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "train.py").write_text("print(1)\n")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-qm", "init"], check=True, env=env)
    commit = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    with tracker.training("m"):
        pass
    (tmp_path / "train.py").write_text("print(2)\n")
    with tracker.training("m"):
        pass
    clean, dirty = tracker.trainings("m")
    assert clean.git_commit == commit and clean.context["git"]["dirty"] is False
    assert dirty.context["git"]["dirty"] is True


def test_context_added_during_training_is_stored_and_not_a_param_change(tracker: modeltrail.Tracker) -> None:
    for path in ("ckpt/a.ckpt", "ckpt/b.ckpt"):
        with tracker.training("m", params={"lr": 0.1}) as run:
            run.add_context({"checkpoint": {"best_path": path}})
    first, second = tracker.trainings("m")
    assert first.context["checkpoint"] == {"best_path": "ckpt/a.ckpt"}
    assert second.context["checkpoint"] == {"best_path": "ckpt/b.ckpt"}
    assert "python" in second.context  # merged with what was captured at the start
    assert tracker.versions("m")[1].param_diff == {"added": {}, "removed": {}, "changed": {}}


def test_stages_record_duration_params_metrics_and_which_failed(tracker: modeltrail.Tracker) -> None:
    with tracker.training("pipe") as run:
        with run.stage("preprocess") as stage:
            stage.log_params({"scaler": "standard"})
            stage.log_metric("rows", 100)
        with run.stage("train"):
            pass
    (record,) = tracker.trainings("pipe")
    assert [(s.name, s.position, s.status) for s in record.stages] == [
        ("preprocess", 0, "finished"),
        ("train", 1, "finished"),
    ]
    assert record.stages[0].params == {"scaler": "standard"} and record.stages[0].duration_s >= 0
    assert record.params["preprocess.scaler"] == "standard"
    assert record.metrics["preprocess.rows"].last == 100.0
    assert "train.duration_s" in record.metrics

    with pytest.raises(KeyError), tracker.training("pipe") as run:
        with run.stage("preprocess"):
            pass
        with run.stage("train"):
            raise KeyError("label")
    failed = tracker.trainings("pipe")[1]
    assert failed.status == "failed" and failed.error == "stage 'train' failed: KeyError: 'label'"
    assert [(s.name, s.status) for s in failed.stages] == [("preprocess", "finished"), ("train", "failed")]
    assert failed.stages[1].error == "KeyError: 'label'"
    assert failed.version is None


@pytest.mark.parametrize(("field", "value"), [("framework", "f" * 65), ("model_type", ""), ("model_type", 3)])
def test_framework_and_type_are_checked(tracker: modeltrail.Tracker, field: str, value) -> None:
    with pytest.raises(ValidationError, match=field):
        tracker.training("m", **{field: value})
    assert tracker.models() == []


def test_a_stage_param_with_a_key_that_is_not_a_string_is_refused_at_the_call(tracker: modeltrail.Tracker) -> None:
    """Before: accepted as ``prep.1`` and then a ValidationError out of the stage's ``__exit__``."""
    with tracker.training("m") as run:
        with run.stage("prep") as stage:
            with pytest.raises(ValidationError, match="param key must be a string, got int 1"):
                stage.log_params({1: "x"})
            stage.log_params({"k": 1})
        assert stage.status == "finished"
    record = tracker.get_training(run.id)
    assert record.params == {"prep.k": 1} and record.status == "finished"
    assert [(s.name, s.status, s.params) for s in record.stages] == [("prep", "finished", {"k": 1})]
