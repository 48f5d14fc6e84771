"""Moving from MLflow: a real MLflow store, made by MLflow itself, imported value by value."""

from __future__ import annotations

import io
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import CI

import modeltrail
from modeltrail import ValidationError
from modeltrail._exchange.mlflow import training_uuid
from modeltrail.cli import main

pytestmark = pytest.mark.slow

T0 = 1_767_225_600_000  # 2026-01-01 in MLflow's milliseconds


def _mlflow() -> Any:
    try:
        import mlflow
    except ModuleNotFoundError:
        if CI:
            raise  # the dev extra installs mlflow: in CI its absence is a broken environment, not a skip
        pytest.skip('mlflow is not installed (pip install "modeltrail[mlflow]")')
    return mlflow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An MLflow store: two registered versions, an unregistered killed run, a deleted run, NaN and infinities."""
    mlflow = _mlflow()
    import pandas as pd
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow")
    url = f"sqlite:///{folder / 'mlflow.db'}"
    previous = os.getcwd()
    os.chdir(folder)  # MLflow puts ./mlruns artifacts beside the working directory
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.set_tracking_uri(url)
            client = MlflowClient()
            exp = client.create_experiment("churn-experiments", tags={"team": "risk"})
            runs: dict[str, dict[str, Any]] = {}
            plans = [
                ("rf-depth-3", {"max_depth": 3, "n_estimators": 100, "db_password": "hunter2"},
                 [0.61, 0.72, math.nan, 0.80], [math.inf, 0.5]),
                ("rf-depth-5", {"max_depth": 5, "n_estimators": 100, "db_password": "hunter2"},
                 [0.65, 0.79, 0.83, 0.86], [-math.inf, 0.25]),
                ("rf-diverged", {"max_depth": 12, "n_estimators": 10}, [0.5], [math.nan]),
                ("rf-deleted", {"max_depth": 1}, [0.1], [1.0]),
            ]  # fmt: skip
            for name, params, auc, loss in plans:
                with mlflow.start_run(experiment_id=exp, run_name=name) as run:
                    mlflow.log_params(params)
                    mlflow.set_tags({"mlflow.source.git.commit": f"{name}-commit", "owner": "alice"})
                    for step, value in enumerate(auc):
                        mlflow.log_metric("val_auc", value, step=step, timestamp=T0 + 1000 * step)
                    for step, value in enumerate(loss):
                        mlflow.log_metric("loss", value, step=step, timestamp=T0 + 500 * step)
                    frame = pd.DataFrame({"tenure": [1, 2, 3], "churned": [0, 1, 0]})
                    data = mlflow.data.from_pandas(frame, name=f"{name}-data", source=str(folder / "churn.csv"))
                    mlflow.log_input(data, context="training")
                    runs[name] = {"id": run.info.run_id, "params": params, "auc": auc, "loss": loss,
                                  "artifacts": run.info.artifact_uri, "digest": data.digest}  # fmt: skip
            client.set_terminated(runs["rf-diverged"]["id"], status="KILLED")
            client.delete_run(runs["rf-deleted"]["id"])
            client.create_registered_model("churn-rf", tags={"task": "classification"}, description="Churn model")
            for name in ("rf-depth-3", "rf-depth-5"):
                run = runs[name]
                mv = client.create_model_version(
                    "churn-rf", source=f"{run['artifacts']}/model", run_id=run["id"], tags={"validated": name}
                )
                run["version"] = int(mv.version)
            client.set_registered_model_alias("churn-rf", "champion", "2")
            for run in runs.values():
                info = client.get_run(run["id"]).info
                run["start"], run["end"], run["status"] = info.start_time, info.end_time, info.status
                run["user"] = info.user_id
                run["history"] = {
                    key: [(m.step, m.value, m.timestamp) for m in client.get_metric_history(run["id"], key)]
                    for key in ("val_auc", "loss")
                }
    finally:
        os.chdir(previous)
    return {"url": url, "runs": runs}


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_import_maps_every_value(
    count_rows: Callable[..., Any], db_url: str, store: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--uri", db_url, "import-mlflow", "--from", store["url"], "--batch-size", "1"]) == 0
    out = capsys.readouterr()
    assert "2 as versions of 2 models" in out.out and "3 runs as trainings" in out.out
    assert out.err == ""  # not a terminal: no progress bar

    tracker = modeltrail.Tracker(db_url)
    runs = store["runs"]
    model = tracker.model("churn-rf")
    assert (model.description, model.tags, model.latest_version) == ("Churn model", {"task": "classification"}, 2)
    versions = tracker.versions("churn-rf")
    assert [v.number for v in versions] == [1, 2] and versions[1].parent_number == 1
    assert versions[1].param_diff["changed"] == {"max_depth": {"old": "3", "new": "5"}}
    for name in ("rf-depth-3", "rf-depth-5"):
        run = runs[name]
        record = tracker.get_training(versions[run["version"] - 1].training_id)
        assert record.uuid == training_uuid(run["id"], "churn-rf", run["version"])
        assert record.status == "finished" and record.version == run["version"]
        assert record.params == {k: "***" if k == "db_password" else str(v) for k, v in run["params"].items()}
        assert record.started_at.timestamp() * 1000 == pytest.approx(run["start"])
        assert record.ended_at is not None and record.ended_at.timestamp() * 1000 == pytest.approx(run["end"])
        assert record.duration_s == pytest.approx((run["end"] - run["start"]) / 1000)
        assert record.git_commit == f"{name}-commit" and record.run_by == run["user"]
        assert record.artifact_path == f"{run['artifacts']}/model"
        assert record.dataset is not None and (record.dataset.name, record.dataset.digest) == (
            f"{name}-data",
            run["digest"],
        )
        assert record.dataset.n_rows == 3 and record.dataset.features == ["tenure", "churned"]
        mlflow_context = record.context["mlflow"]
        assert mlflow_context["run_id"] == run["id"] and mlflow_context["run_name"] == name
        assert mlflow_context["experiment"] == "churn-experiments" and mlflow_context["experiment_tags"] == {
            "team": "risk"
        }
        assert mlflow_context["tags"]["owner"] == "alice"
        assert mlflow_context["registered_model"]["tags"] == {"validated": name}
        assert mlflow_context["registered_model"]["aliases"] == (["champion"] if name == "rf-depth-5" else [])
        for key, logged in (("val_auc", run["auc"]), ("loss", run["loss"])):
            points = tracker.metric_history(record.id, key)
            assert len(points) == len(logged) == len(run["history"][key])
            for point, value, (step, _stored, ts) in zip(points, logged, run["history"][key], strict=True):
                assert point.step == step and _same(point.value, value)  # NaN and +/-inf come back as logged
                assert point.timestamp.timestamp() * 1000 == pytest.approx(ts)
        assert record.metrics["val_auc"].last == run["auc"][-1]

    (killed,) = tracker.trainings("churn-experiments")  # unregistered: a training of the experiment's model
    assert killed.uuid == training_uuid(runs["rf-diverged"]["id"])
    assert (killed.status, killed.version, killed.error) == ("failed", None, "MLflow run status KILLED")
    assert math.isnan(tracker.metric_history(killed.id, "loss")[0].value)
    assert tracker.versions("churn-experiments") == []
    assert not any(t.context["mlflow"]["run_name"] == "rf-deleted" for t in tracker.trainings())
    (event,) = tracker.audit(action="mlflow.import")
    assert event.after["trainings"] == 3 and event.after["versions"] == 2

    # Importing again adds nothing.
    before = count_rows(db_url, "metric_points")
    assert main(["--uri", db_url, "import-mlflow", "--from", store["url"]]) == 0
    again = capsys.readouterr().out
    assert "0 runs as trainings" in again and "3 already there" in again
    assert count_rows(db_url, "metric_points") == before and len(tracker.trainings()) == 3


def test_import_records_a_version_create_event_per_version(sqlite_url: str, store: dict[str, Any]) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    tracker.import_mlflow(store["url"])
    versions = {v.id: v for v in tracker.versions("churn-rf")}
    events = tracker.audit(action="version.create")
    assert sorted(int(e.entity_id) for e in events) == sorted(versions)
    for event in events:
        version = versions[int(event.entity_id)]
        assert event.entity == "version" and event.after["model"] == "churn-rf"
        assert (event.after["number"], event.after["training_id"]) == (version.number, version.training_id)
        assert event.after["param_diff"] == version.param_diff
    tracker.import_mlflow(store["url"])  # nothing new: no new events
    assert len(tracker.audit(action="version.create")) == len(versions)


def test_a_version_number_held_by_another_training_is_refused_before_anything_is_written(
    sqlite_url: str, store: dict[str, Any]
) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    with tracker.training("churn-rf", params={"mine": 1}):
        pass
    with pytest.raises(ValidationError, match="version 1 of model 'churn-rf' already exists"):
        tracker.import_mlflow(store["url"])
    assert len(tracker.trainings()) == 1 and tracker.models(name="churn-experiments") == []


def test_progress_bar_on_a_terminal_only(
    sqlite_url: str, store: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["--uri", sqlite_url, "import-mlflow", "--from", store["url"], "--batch-size", "2"]) == 0
    drawn = terminal.getvalue()
    assert "\r" in drawn and "3/3 runs 100%" in drawn and drawn.endswith("\n")

    export = Path(sqlite_url.removeprefix("sqlite:///")).with_name("out.jsonl")
    terminal.truncate(0)
    assert main(["--uri", sqlite_url, "export", "churn-rf", "-o", str(export)]) == 0
    assert "exporting churn-rf [" in terminal.getvalue() and "2/2 versions 100%" in terminal.getvalue()


def test_not_a_mlflow_store_is_a_clear_error(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.db"
    modeltrail.Tracker(f"sqlite:///{other}").close()  # a modeltrail ledger, not an MLflow store
    assert main(["--uri", sqlite_url, "import-mlflow", "--from", f"sqlite:///{other}"]) == 2
    assert "is not a MLflow tracking store" in capsys.readouterr().err
