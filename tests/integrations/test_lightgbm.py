"""The LightGBM callback: what ``lightgbm.train`` leaves in the ledger equals ``lightgbm.record_evaluation``'s."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

lgb: Any = pytest.importorskip("lightgbm")

import numpy as np  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris  # noqa: E402

import modeltrail  # noqa: E402
from modeltrail import _adapter  # noqa: E402
from modeltrail._errors import ValidationError  # noqa: E402
from modeltrail.integrations.lightgbm import INTERRUPTED, ModeltrailCallback  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"objective": "binary", "metric": ["binary_logloss", "auc"], "learning_rate": 0.3, "verbose": -1, "seed": 3}


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_adapter, "_warned", set())


def cancer() -> tuple[Any, Any]:
    X, y = load_breast_cancer(return_X_y=True)
    names = [f"x{i}" for i in range(X.shape[1])]
    train = lgb.Dataset(X[:400], y[:400], feature_name=names, free_raw_data=False)
    return train, lgb.Dataset(X[400:], y[400:], reference=train, free_raw_data=False)


def history(tracker: modeltrail.Tracker, model: str, key: str, version: int | None = None) -> list[tuple[int, float]]:
    return [(p.step, p.value) for p in tracker.metric_history(model, key, version=version)]


def assert_equal_to_record_evaluation(tracker: modeltrail.Tracker, model: str, recorded: dict[str, Any]) -> None:
    run = tracker.trainings(model)[0]
    keys = {f"{data}-{metric}" for data, metrics in recorded.items() for metric in metrics}
    assert set(run.metrics) - {"train.duration_s"} == keys
    for data, metrics in recorded.items():
        for metric, values in metrics.items():
            assert history(tracker, model, f"{data}-{metric}") == list(enumerate(values))


@pytest.mark.parametrize("ours_first", [True, False])
def test_every_iteration_equals_record_evaluation_with_early_stopping(
    db_url_sqlite_mysql: str, ours_first: bool
) -> None:
    train, valid = cancer()
    recorded: dict[str, Any] = {}
    cb = ModeltrailCallback("cancer-lgb", db_url_sqlite_mysql)
    others = [lgb.early_stopping(4, verbose=False), lgb.record_evaluation(recorded)]
    callbacks = [cb, *others] if ours_first else [*others, cb]
    given = list(callbacks)
    booster = lgb.train(
        PARAMS, train, 300, valid_sets=[train, valid], valid_names=["train", "valid"], callbacks=callbacks
    )
    assert callbacks == given and all(type(c).__name__ != "_Watched" for c in callbacks)  # the user's list is untouched
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    assert_equal_to_record_evaluation(tracker, "cancer-lgb", recorded)
    (run,) = tracker.trainings("cancer-lgb")
    assert len(recorded["valid"]["auc"]) < 300 and booster.best_iteration > 0  # early stopping ended it
    assert (run.status, run.version, cb.version and cb.version.number) == ("finished", 1, 1)
    assert run.context["model_class"] == "lightgbm.basic.Booster"
    assert run.context["best_iteration"] == booster.best_iteration
    assert run.context["best_score"] == {
        f"{data}-{metric}": pytest.approx(value)
        for data, scores in booster.best_score.items()
        for metric, value in scores.items()
    }
    assert {k: run.params[k] for k in PARAMS} == PARAMS and run.params["num_boost_round"] == 300
    assert tracker.model("cancer-lgb").model_type == "classifier"
    gain = dict(
        zip(booster.feature_name(), booster.feature_importance("gain", iteration=booster.best_iteration), strict=True)
    )
    split = dict(
        zip(booster.feature_name(), booster.feature_importance("split", iteration=booster.best_iteration), strict=True)
    )
    # train() hands back the booster reloaded from its text model, whose gains are rounded to ~7 digits.
    assert run.context["feature_importance"]["gain"] == pytest.approx(gain, rel=1e-5)
    assert run.context["feature_importance"]["split"] == pytest.approx(split)
    # The artifact is what booster.save_model() writes after train: up to the best iteration.
    assert run.artifact_path is not None and run.artifact_path.endswith(".txt")
    loaded = lgb.Booster(model_file=run.artifact_path)
    assert loaded.num_trees() == booster.best_iteration
    X = load_breast_cancer(return_X_y=True)[0][400:]
    assert np.array_equal(loaded.predict(X), booster.predict(X))
    # The registry hands the same booster back by version, sha256-checked (flavor lightgbm).
    from_registry = tracker.load_model("cancer-lgb", version=1)
    assert isinstance(from_registry, lgb.Booster) and np.array_equal(from_registry.predict(X), booster.predict(X))


def test_without_early_stopping_the_last_iteration_ends_it(sqlite_url: str) -> None:
    X, y = load_diabetes(return_X_y=True)
    train = lgb.Dataset(X, y)
    recorded: dict[str, Any] = {}
    cb = ModeltrailCallback("diabetes", uri=sqlite_url)
    for leaves in (4, 8):
        recorded.clear()
        params = {"num_leaves": leaves, "verbose": -1}
        lgb.train(params, train, 7, valid_sets=[train], callbacks=[lgb.record_evaluation(recorded), cb])
    tracker = modeltrail.Tracker(sqlite_url)
    assert tracker.model("diabetes").model_type == "regressor"
    assert {g.metric: g.goal for g in tracker.metric_goals("diabetes")} == {"training-l2": "min"}  # LightGBM said so
    best = tracker.best_version("diabetes", metric="training-l2")  # no mode needed
    assert best is not None and best.version == 2  # more leaves fit the training data closer
    assert history(tracker, "diabetes", "training-l2", version=2) == list(enumerate(recorded["training"]["l2"]))
    _, v2 = tracker.versions("diabetes")
    assert v2.param_diff["changed"] == {"num_leaves": {"old": 4, "new": 8}}
    assert v2.artifact_path is not None and lgb.Booster(model_file=v2.artifact_path).num_trees() == 7
    assert "best_iteration" not in tracker.trainings("diabetes")[0].context


def test_multiclass_through_the_sklearn_wrapper(sqlite_url: str) -> None:
    X, y = load_iris(return_X_y=True)
    clf = lgb.LGBMClassifier(n_estimators=5, verbose=-1)
    clf.fit(X, y, eval_set=[(X, y)], callbacks=[ModeltrailCallback("iris", sqlite_url)])
    tracker = modeltrail.Tracker(sqlite_url)
    assert_equal_to_record_evaluation(tracker, "iris", clf.evals_result_)
    assert tracker.model("iris").model_type == "classifier" and tracker.trainings("iris")[0].version == 1


def test_settings_are_checked_at_the_call() -> None:
    with pytest.raises(ValidationError, match="model name"):
        ModeltrailCallback(" padded ")
    with pytest.raises(ValidationError, match="params"):
        ModeltrailCallback("m", params="lr=0.1")  # type: ignore[arg-type]


def test_an_unusable_ledger_warns_once_and_training_completes(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    cb = ModeltrailCallback("nowhere", uri=f"sqlite:///{tmp_path / 'not-a-dir' / 'ledger.db'}")
    train, valid = cancer()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        booster = lgb.train(PARAMS, train, 5, valid_sets=[valid], callbacks=[cb])
    ours = [str(w.message) for w in caught if issubclass(w.category, _adapter.ModeltrailWarning)]
    assert len(ours) == 1 and "lightgbm: starting the training" in ours[0]
    assert booster.num_trees() == 5 and cb.training_id is None


def test_a_failing_callback_after_ours_fails_the_training(sqlite_url: str) -> None:
    def explode(env: Any) -> None:
        if env.iteration == 2:
            raise RuntimeError("user callback broke")

    explode.order = 40  # type: ignore[attr-defined]
    train, valid = cancer()
    with pytest.raises(RuntimeError, match="user callback broke"):
        lgb.train(PARAMS, train, 10, valid_sets=[valid], callbacks=[ModeltrailCallback("broken", sqlite_url), explode])
    (run,) = modeltrail.Tracker(sqlite_url).trainings("broken")
    assert (run.status, run.version) == ("failed", None)
    assert run.error == "stage 'train' failed: RuntimeError: user callback broke"
    assert run.metrics["valid_0-auc"].count == 3  # iterations 0, 1, 2 were recorded


def test_a_train_that_raises_unseen_is_failed_by_the_next_train(sqlite_url: str) -> None:
    train, valid = cancer()
    calls = {"n": 0}

    def objective(preds: Any, data: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError("custom objective broke")
        grad = preds - data.get_label()
        return grad, np.ones_like(grad)

    cb = ModeltrailCallback("broken", sqlite_url)
    with pytest.raises(ValueError, match="custom objective broke"):
        lgb.train({**PARAMS, "objective": objective}, train, 10, valid_sets=[valid], callbacks=[cb])
    lgb.train(PARAMS, train, 3, valid_sets=[valid], callbacks=[cb])
    failed, finished = sorted(modeltrail.Tracker(sqlite_url).trainings("broken"), key=lambda r: r.id)
    assert (failed.status, failed.version, failed.error) == ("failed", None, f"stage 'train' failed: {INTERRUPTED}")
    assert (finished.status, finished.version) == ("finished", 1)


def test_inside_an_active_training_the_iterations_log_into_it(db_url_sqlite_mysql: str) -> None:
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    train, valid = cancer()
    recorded: dict[str, Any] = {}
    with tracker.training("outer") as run:
        lgb.train(
            PARAMS, train, 4, valid_sets=[valid], callbacks=[ModeltrailCallback(), lgb.record_evaluation(recorded)]
        )
        run.flush()
        assert tracker.get_training(run.id).status == "running"
    assert_equal_to_record_evaluation(tracker, "outer", recorded)
    assert tracker.trainings("outer")[0].version == 1 and [m.name for m in tracker.models()] == ["outer"]


def test_the_callback_pickles_as_its_settings(sqlite_url: str) -> None:
    copy = pickle.loads(pickle.dumps(ModeltrailCallback("pickled", sqlite_url, params={"dataset": "cancer"})))
    train, valid = cancer()
    lgb.train(PARAMS, train, 2, valid_sets=[valid], callbacks=[copy])
    (run,) = modeltrail.Tracker(sqlite_url).trainings("pickled")
    assert run.params["dataset"] == "cancer" and run.version == 1


def test_a_missing_lightgbm_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['lightgbm'] = None\n"
        "try:\n    import modeltrail.integrations.lightgbm\n"
        "except ModuleNotFoundError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == 'modeltrail.integrations.lightgbm needs lightgbm: pip install "modeltrail[lightgbm]"'


def test_the_example_runs_and_leaves_two_versions(db_url_sqlite_mysql: str, tmp_path: Path) -> None:
    env = {**os.environ, "MODELTRAIL_URI": db_url_sqlite_mysql}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "lightgbm_native.py")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "num_leaves=4: training 1 -> version 1" in done.stdout and "best version by valid-l2: " in done.stdout
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    for run in tracker.trainings("diabetes-lgbm"):
        assert run.status == "finished" and Path(run.artifact_path or "").is_file()
        assert lgb.Booster(model_file=run.artifact_path).num_trees() == run.context["best_iteration"]
