"""The XGBoost callback: what ``xgboost.train`` leaves in the ledger equals XGBoost's own ``evals_result``."""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

xgb: Any = pytest.importorskip("xgboost")

import numpy as np  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes  # noqa: E402

import modeltrail  # noqa: E402
from modeltrail import _adapter  # noqa: E402
from modeltrail._errors import StorageError, ValidationError  # noqa: E402
from modeltrail.integrations.xgboost import INTERRUPTED, ModeltrailCallback  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "max_depth": 3, "eta": 0.3, "seed": 7}


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_adapter, "_warned", set())


def cancer() -> tuple[Any, Any]:
    X, y = load_breast_cancer(return_X_y=True)
    return xgb.DMatrix(X[:400], y[:400], feature_names=[f"x{i}" for i in range(X.shape[1])]), xgb.DMatrix(
        X[400:], y[400:], feature_names=[f"x{i}" for i in range(X.shape[1])]
    )


def history(tracker: modeltrail.Tracker, model: str, key: str, version: int | None = None) -> list[tuple[int, float]]:
    return [(p.step, p.value) for p in tracker.metric_history(model, key, version=version)]


def test_every_round_equals_evals_result_with_early_stopping(db_url_sqlite_mysql: str) -> None:
    dtrain, dval = cancer()
    evals_result: dict[str, Any] = {}
    cb = ModeltrailCallback("cancer-xgb", db_url_sqlite_mysql)
    booster = xgb.train(
        PARAMS, dtrain, 200, evals=[(dtrain, "train"), (dval, "validation_0")], evals_result=evals_result,
        early_stopping_rounds=5, callbacks=[cb], verbose_eval=False,
    )  # fmt: skip
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    (run,) = tracker.trainings("cancer-xgb")
    keys = {f"{data}-{metric}" for data, metrics in evals_result.items() for metric in metrics}
    assert keys == {"train-logloss", "train-auc", "validation_0-logloss", "validation_0-auc"}
    assert set(run.metrics) == keys | {"train.duration_s"}
    rounds = len(evals_result["validation_0"]["logloss"])
    assert rounds < 200  # early stopping ended it
    for data, metrics in evals_result.items():
        for metric, values in metrics.items():
            assert history(tracker, "cancer-xgb", f"{data}-{metric}") == list(enumerate(values))
    assert run.params == {**PARAMS, "num_boost_round": 200, "early_stopping_rounds": 5}
    assert tracker.model("cancer-xgb").model_type == "classifier"
    assert tracker.model("cancer-xgb").framework == "xgboost"
    goals = {g.metric: g.goal for g in tracker.metric_goals("cancer-xgb")}
    assert goals == {
        "train-logloss": "min",
        "validation_0-logloss": "min",
        "train-auc": "max",
        "validation_0-auc": "max",
    }
    assert run.context["model_class"] == "xgboost.core.Booster"
    assert run.context["best_iteration"] == booster.best_iteration
    assert run.context["best_score"] == pytest.approx(booster.best_score)
    gain, weight = booster.get_score(importance_type="gain"), booster.get_score(importance_type="weight")
    assert run.context["feature_importance"]["gain"] == pytest.approx(gain)
    assert run.context["feature_importance"]["weight"] == pytest.approx(weight)
    assert list(run.context["feature_importance"]["gain"]) == sorted(gain, key=lambda f: (-gain[f], f))
    # The booster is the version's artifact: it loads and predicts exactly as the trained one.
    assert (run.status, run.version, cb.version and cb.version.number, cb.training_id) == ("finished", 1, 1, run.id)
    assert run.artifact_path is not None and run.artifact_path.endswith(".json")
    loaded = xgb.Booster(model_file=run.artifact_path)
    assert np.array_equal(loaded.predict(dval), booster.predict(dval))
    assert tracker.versions("cancer-xgb")[0].artifact_path == run.artifact_path
    # ... and the registry hands it back by version, sha256-checked, as a Booster (flavor xgboost).
    assert tracker.model_artifact("cancer-xgb", version=1).flavor == "xgboost"
    from_registry = tracker.load_model("cancer-xgb", version=1)
    assert isinstance(from_registry, xgb.Booster)
    assert np.array_equal(from_registry.predict(dval), booster.predict(dval))


def test_regressor_saved_as_ubj_and_a_second_train_is_the_next_version(sqlite_url: str, tmp_path: Path) -> None:
    X, y = load_diabetes(return_X_y=True)
    dtrain = xgb.DMatrix(X, y)
    cb = ModeltrailCallback("diabetes", uri=sqlite_url, model_format="ubj", artifact_dir=tmp_path / "models")
    result: dict[str, Any] = {}
    booster = xgb.train({"max_depth": 2}, dtrain, 4, evals=[(dtrain, "train")], evals_result=result, callbacks=[cb])
    xgb.train({"max_depth": 3}, dtrain, 4, evals=[(dtrain, "train")], callbacks=[cb], verbose_eval=False)
    tracker = modeltrail.Tracker(sqlite_url)
    assert tracker.model("diabetes").model_type == "regressor"  # no objective: XGBoost's reg:squarederror
    assert history(tracker, "diabetes", "train-rmse", version=1) == list(enumerate(result["train"]["rmse"]))
    v1, v2 = tracker.versions("diabetes")
    assert v2.param_diff["changed"] == {"max_depth": {"old": 2, "new": 3}}
    assert v1.artifact_path is not None and Path(v1.artifact_path).parent == tmp_path / "models"
    assert v1.artifact_path.endswith(".ubj")
    assert np.array_equal(xgb.Booster(model_file=v1.artifact_path).predict(dtrain), booster.predict(dtrain))
    assert np.array_equal(tracker.load_model("diabetes", version=1).predict(dtrain), booster.predict(dtrain))  # UBJ
    assert "best_iteration" not in tracker.trainings("diabetes")[0].context  # no early stopping


def test_the_sklearn_wrapper_is_recorded_with_its_validation_names(sqlite_url: str) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    clf = xgb.XGBClassifier(n_estimators=6, max_depth=2, callbacks=[ModeltrailCallback("cancer-sk", sqlite_url)])
    clf.fit(X[:400], y[:400], eval_set=[(X[:400], y[:400]), (X[400:], y[400:])], verbose=False)
    tracker = modeltrail.Tracker(sqlite_url)
    (run,) = tracker.trainings("cancer-sk")
    recorded = clf.evals_result()
    assert set(recorded) == {"validation_0", "validation_1"}
    for data, metrics in recorded.items():
        for metric, values in metrics.items():
            assert history(tracker, "cancer-sk", f"{data}-{metric}") == list(enumerate(values))
    assert run.params["max_depth"] == 2 and run.params["num_boost_round"] == 6
    assert None not in run.params.values()  # XGBoost's "default" Nones are not params
    assert tracker.model("cancer-sk").model_type == "classifier"


def test_settings_are_checked_at_the_call() -> None:
    with pytest.raises(ValidationError, match="model name"):
        ModeltrailCallback("")
    with pytest.raises(ValidationError, match="tag key"):
        ModeltrailCallback("m", tags={" ": "x"})
    with pytest.raises(ValidationError, match="model_format"):
        ModeltrailCallback("m", model_format="pickle")
    with pytest.raises(ValidationError, match="params"):
        ModeltrailCallback("m", params=["not", "a", "mapping"])  # type: ignore[arg-type]


def test_an_unusable_ledger_warns_once_and_training_completes(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    cb = ModeltrailCallback("nowhere", uri=f"sqlite:///{tmp_path / 'not-a-dir' / 'ledger.db'}")
    dtrain, dval = cancer()
    result: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        booster = xgb.train(PARAMS, dtrain, 5, evals=[(dval, "eval")], evals_result=result, callbacks=[cb])
    ours = [str(w.message) for w in caught if issubclass(w.category, _adapter.ModeltrailWarning)]
    assert len(ours) == 1 and "xgboost: starting the training" in ours[0]
    assert booster.num_boosted_rounds() == 5 and len(result["eval"]["logloss"]) == 5
    assert cb.training_id is None and not Path("artifacts").exists()


def test_failures_while_logging_warn_once_and_the_training_still_finishes(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(self: Any, key: str, value: float, step: int | None = None) -> None:
        raise StorageError("database went away")

    monkeypatch.setattr(modeltrail.Training, "log_metric", unavailable)
    dtrain, dval = cancer()
    with pytest.warns(_adapter.ModeltrailWarning) as caught:
        booster = xgb.train(
            PARAMS, dtrain, 5, evals=[(dval, "eval")], callbacks=[ModeltrailCallback("flaky", sqlite_url)]
        )
    ours = [str(w.message) for w in caught if issubclass(w.category, _adapter.ModeltrailWarning)]
    assert len([m for m in ours if "logging round metrics" in m]) == 1  # once per hook, not once per round
    assert booster.num_boosted_rounds() == 5
    (run,) = modeltrail.Tracker(sqlite_url).trainings("flaky")
    assert (run.status, run.version, run.metrics.keys() - {"train.duration_s"}) == ("finished", 1, set())


def test_a_train_that_raises_is_recorded_failed_and_makes_no_version(sqlite_url: str) -> None:
    dtrain, _ = cancer()

    def objective(predt: Any, data: Any) -> Any:
        raise RuntimeError("custom objective broke")

    cb = ModeltrailCallback("broken", sqlite_url)
    with pytest.raises(RuntimeError, match="custom objective broke"):
        xgb.train({"max_depth": 2}, dtrain, 5, obj=objective, callbacks=[cb])
    xgb.train(PARAMS, dtrain, 3, callbacks=[cb])  # the next train ends the interrupted one first
    tracker = modeltrail.Tracker(sqlite_url)
    failed, finished = sorted(tracker.trainings("broken"), key=lambda r: r.id)
    assert (failed.status, failed.version) == ("failed", None) and INTERRUPTED in (failed.error or "")
    assert (finished.status, finished.version) == ("finished", 1)

    lost = ModeltrailCallback("dropped", sqlite_url)
    with pytest.raises(RuntimeError):
        xgb.train({"max_depth": 2}, dtrain, 5, obj=objective, callbacks=[lost])
    del lost
    gc.collect()  # the callback is gone: its training is recorded failed
    for _ in range(100):  # the watchdog fails it on a thread of its own
        (run,) = tracker.trainings("dropped")
        if run.status != "running":
            break
        time.sleep(0.05)
    assert (run.status, run.version) == ("failed", None) and "the callback was discarded" in (run.error or "")


def test_inside_an_active_training_the_rounds_log_into_it(db_url_sqlite_mysql: str) -> None:
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    dtrain, dval = cancer()
    result: dict[str, Any] = {}
    with tracker.training("outer", params={"max_depth": 3}) as run:
        xgb.train(PARAMS, dtrain, 4, evals=[(dval, "eval")], evals_result=result, callbacks=[ModeltrailCallback()])
        run.flush()
        assert tracker.get_training(run.id).status == "running"  # its block ends it, not the callback
    (recorded,) = tracker.trainings("outer")
    assert (recorded.status, recorded.version) == ("finished", 1)
    assert history(tracker, "outer", "eval-auc") == list(enumerate(result["eval"]["auc"]))
    assert recorded.params["objective"] == "binary:logistic" and recorded.params["num_boost_round"] == 4
    assert [m.name for m in tracker.models()] == ["outer"]


def test_the_callback_pickles_as_its_settings(sqlite_url: str) -> None:
    cb = ModeltrailCallback("pickled", sqlite_url, tags={"team": "risk"}, params={"dataset": "cancer"})
    copy = pickle.loads(pickle.dumps(cb))
    dtrain, _ = cancer()
    xgb.train(PARAMS, dtrain, 2, callbacks=[copy])
    tracker = modeltrail.Tracker(sqlite_url)
    (run,) = tracker.trainings("pickled")
    assert run.params["dataset"] == "cancer" and tracker.model("pickled").tags == {"team": "risk"}


def test_a_missing_xgboost_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['xgboost'] = None\n"
        "try:\n    import modeltrail.integrations.xgboost\n"
        "except ModuleNotFoundError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == 'modeltrail.integrations.xgboost needs xgboost: pip install "modeltrail[xgboost]"'


def test_the_example_runs_and_leaves_two_versions(db_url_sqlite_mysql: str, tmp_path: Path) -> None:
    env = {**os.environ, "MODELTRAIL_URI": db_url_sqlite_mysql}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "xgboost_native.py")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "max_depth=2: training 1 -> version 1" in done.stdout and "version 2 changed: {'max_depth'" in done.stdout
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    for run in tracker.trainings("cancer-xgb"):
        assert run.status == "finished" and Path(run.artifact_path or "").is_file()
        curve = tracker.metric_history(run, "validation-auc")
        assert [p.step for p in curve] == list(range(len(curve))) and run.context["best_iteration"] < len(curve)
