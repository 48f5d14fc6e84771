"""Autolog of XGBoost, LightGBM and the Transformers Trainer: recorded with no callback in the user's code.

What autolog records must equal what the framework keeps itself (``evals_result``, ``record_evaluation``,
``trainer.state.log_history``), point by point; a call autolog added nothing to is left exactly as it was.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: nothing may reach the network
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_breast_cancer

import modeltrail
from modeltrail import _adapter


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setattr(_adapter, "_warned", set())
    monkeypatch.chdir(tmp_path)  # the adapters' default artifact folders land here
    yield
    modeltrail.disable_autolog()


def history(tracker: modeltrail.Tracker, training_id: int, key: str) -> list[tuple[int, float]]:
    return [(p.step, p.value) for p in tracker.metric_history(training_id, key)]


def assert_equals_framework_record(tracker: modeltrail.Tracker, training_id: int, recorded: dict[str, Any]) -> None:
    """``recorded`` is ``{eval set: {metric: [value per round]}}`` (XGBoost's evals_result, LightGBM's record)."""
    run = tracker.get_training(training_id)
    keys = {f"{data}-{metric}" for data, metrics in recorded.items() for metric in metrics}
    assert set(run.metrics) - {"train.duration_s"} == keys
    for data, metrics in recorded.items():
        for metric, values in metrics.items():
            assert history(tracker, training_id, f"{data}-{metric}") == list(enumerate(values)), (data, metric)


def cancer() -> tuple[Any, Any, Any, Any]:
    X, y = load_breast_cancer(return_X_y=True)
    return X[:400], y[:400], X[400:], y[400:]


# ----------------------------------------------------------------------- XGBoost
def test_xgboost_train_and_its_sklearn_wrapper_are_recorded_once_each(sqlite_url: str) -> None:
    xgb = pytest.importorskip("xgboost")
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from modeltrail.integrations.xgboost import ModeltrailCallback

    original = xgb.train
    X, y, Xv, yv = cancer()
    dtrain, dval = xgb.DMatrix(X, y), xgb.DMatrix(Xv, yv)
    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "max_depth": 2, "seed": 1}
    modeltrail.enable_autolog(sqlite_url)
    assert xgb.train is not original
    evals_result: dict[str, Any] = {}
    xgb.train(params, dtrain, 6, evals=[(dtrain, "train"), (dval, "valid")], evals_result=evals_result,
              verbose_eval=False)  # fmt: skip
    tracker = modeltrail.Tracker(sqlite_url)
    (run,) = tracker.trainings("xgboost")
    assert (run.status, run.version) == ("finished", 1)
    assert run.params == {**params, "num_boost_round": 6}
    assert_equals_framework_record(tracker, run.id, evals_result)
    assert run.artifact_path and Path(run.artifact_path).is_file()

    # The scikit-learn wrapper goes through xgboost.train: one training, named after the wrapper's class.
    clf = xgb.XGBClassifier(n_estimators=4, max_depth=2, eval_metric="logloss")
    clf.fit(X, y, eval_set=[(Xv, yv)], verbose=False)
    (wrapped,) = tracker.trainings("XGBClassifier")
    assert history(tracker, wrapped.id, "validation_0-logloss") == list(
        enumerate(clf.evals_result()["validation_0"]["logloss"])
    )
    # A callback of the user's own: autolog adds none (one training, the user's name).
    xgb.train(params, dtrain, 3, callbacks=[ModeltrailCallback("mine", tracker=tracker)], verbose_eval=False)
    assert len(tracker.trainings("mine")) == 1 and len(tracker.trainings()) == 3
    # Inside a recorded scikit-learn Pipeline the booster's fit is the pipeline's: its training, no rounds.
    make_pipeline(StandardScaler(), xgb.XGBClassifier(n_estimators=3, max_depth=2)).fit(X, y)
    (pipeline,) = tracker.trainings("Pipeline")
    assert pipeline.context["model_class"] == "sklearn.pipeline.Pipeline"
    assert not [k for k in pipeline.metrics if k.startswith("validation_")] and len(tracker.trainings()) == 4
    # Cross-validation folds are no trainings of their own (as scikit-learn's own estimators' folds).
    assert len(cross_val_score(xgb.XGBClassifier(n_estimators=2, max_depth=2), X, y, cv=3)) == 3
    assert len(tracker.trainings()) == 4
    # Turned off by name after it was patched: left alone; disable_autolog() restores the very functions.
    modeltrail.enable_autolog(sqlite_url, xgboost=False)
    xgb.train(params, dtrain, 2, verbose_eval=False)
    assert len(tracker.trainings()) == 4
    modeltrail.disable_autolog()
    assert xgb.train is original and xgb.sklearn.train is original
    xgb.train(params, dtrain, 2, verbose_eval=False)
    assert len(tracker.trainings()) == 4  # nothing recorded once autolog is off
    tracker.close()


def test_an_xgboost_train_that_raises_is_recorded_failed_with_its_error(sqlite_url: str) -> None:
    xgb = pytest.importorskip("xgboost")
    X, y, _, _ = cancer()
    dtrain = xgb.DMatrix(X, y)

    def objective(predt: Any, data: Any) -> Any:
        raise ValueError("custom objective exploded")

    modeltrail.enable_autolog(sqlite_url, model="boom")
    with pytest.raises(ValueError, match="custom objective exploded"):
        xgb.train({"max_depth": 2}, dtrain, 3, obj=objective)
    (run,) = modeltrail.Tracker(sqlite_url).trainings("boom")
    assert (run.status, run.version) == ("failed", None)
    assert run.error == "stage 'train' failed: ValueError: custom objective exploded"  # the error itself, at once


# ---------------------------------------------------------------------- LightGBM
def test_lightgbm_train_and_its_sklearn_wrapper_equal_record_evaluation(sqlite_url: str) -> None:
    lgb = pytest.importorskip("lightgbm")
    original = lgb.train
    X, y, Xv, yv = cancer()
    train = lgb.Dataset(X, y, free_raw_data=False)
    valid = lgb.Dataset(Xv, yv, reference=train, free_raw_data=False)
    params = {"objective": "binary", "metric": ["binary_logloss", "auc"], "num_leaves": 7, "verbose": -1, "seed": 3}
    modeltrail.enable_autolog(sqlite_url, model="cancer-lgb")
    recorded: dict[str, Any] = {}
    lgb.train(params, train, 30, valid_sets=[valid], valid_names=["valid"],
              callbacks=[lgb.record_evaluation(recorded), lgb.early_stopping(3, verbose=False)])  # fmt: skip
    tracker = modeltrail.Tracker(sqlite_url)
    (run,) = tracker.trainings("cancer-lgb")
    assert (run.status, run.version) == ("finished", 1)
    assert len(recorded["valid"]["auc"]) < 30 and run.context["best_iteration"] >= 1  # early stopping ended it
    assert_equals_framework_record(tracker, run.id, recorded)
    assert run.params["num_leaves"] == 7 and run.params["num_boost_round"] == 30

    clf = lgb.LGBMClassifier(n_estimators=5, num_leaves=7, verbose=-1)
    clf.fit(X, y, eval_set=[(Xv, yv)])
    runs = tracker.trainings("cancer-lgb")
    assert len(runs) == 2
    assert_equals_framework_record(tracker, runs[-1].id, clf.evals_result_)
    # The LabelEncoder the wrapper fits for itself is not the training's preprocessing.
    assert "preprocessing" not in runs[-1].context and not [k for k in runs[-1].params if "LabelEncoder" in k]
    modeltrail.disable_autolog()
    assert lgb.train is original
    lgb.train(params, train, 2)
    assert len(tracker.trainings()) == 2
    tracker.close()


# ------------------------------------------------------------------ Transformers
def test_a_transformers_trainer_is_recorded_with_its_log_history_and_evaluation(sqlite_url: str) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from modeltrail.integrations.transformers import ModeltrailCallback

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 32, (48, 8), generator=g)
    data = [{"input_ids": ids[i], "labels": (ids[i, 0] > 16).long()} for i in range(48)]
    torch.manual_seed(0)
    model = BertForSequenceClassification(
        BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                   max_position_embeddings=16, num_labels=2)
    )  # fmt: skip
    args = TrainingArguments(
        output_dir="out", max_steps=6, per_device_train_batch_size=8, logging_steps=2, eval_strategy="steps",
        eval_steps=3, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    modeltrail.enable_autolog(sqlite_url, model="tiny-bert")
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data[:16])
    trainer.train()
    logged = [dict(e) for e in trainer.state.log_history]
    evaluated = trainer.evaluate()
    (callback,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, ModeltrailCallback)]

    tracker = modeltrail.Tracker(sqlite_url)
    (run,) = tracker.trainings("tiny-bert")
    assert (run.status, run.version, run.id) == ("finished", 1, callback.training_id)
    keys = {k for e in logged for k, v in e.items() if k != "step" and isinstance(v, (int, float))}
    # total_flos too: the Trainer's printer callback pops it from the logs before a callback added after it sees them.
    assert {"loss", "eval_loss", "train_loss", "total_flos"} <= keys and set(run.metrics) - {"train.duration_s"} == keys
    for key in sorted(keys):
        assert history(tracker, run.id, key) == [(e["step"], float(e[key])) for e in logged if key in e], key
    assert run.params["max_steps"] == 6 and run.params["config.hidden_size"] == 16
    (evaluation,) = tracker.evaluations("tiny-bert")
    assert evaluation.version == 1 and evaluation.metrics["eval_loss"] == pytest.approx(evaluated["eval_loss"])

    # A second train() of the same Trainer reuses the callback autolog gave it: a second training, not two.
    trainer.train()
    assert [r.version for r in tracker.trainings("tiny-bert")] == [1, 2]
    assert sum(isinstance(c, ModeltrailCallback) for c in trainer.callback_handler.callbacks) == 1

    # A train() that raises is recorded failed with its own error at once, and the error propagates: on a new
    # Trainer, and on this one, whose callback autolog gave it before.
    broken = Trainer(model=model, args=args, train_dataset=[{"input_ids": ids[0]}] * 8, eval_dataset=data[:8])
    for raising in (broken, trainer):
        raising.train_dataset = broken.train_dataset
        with pytest.raises(Exception) as raised:
            raising.train()
        failed = tracker.trainings("tiny-bert")[-1]
        assert (failed.status, failed.version) == ("failed", None)
        assert failed.error == f"stage 'train' failed: {type(raised.value).__name__}: {raised.value}"
    assert len(tracker.trainings("tiny-bert")) == 4

    # disable_autolog() takes the callback off the Trainers it was given to: nothing more is recorded.
    modeltrail.disable_autolog()
    assert not any(isinstance(c, ModeltrailCallback) for c in trainer.callback_handler.callbacks)
    trainer.train_dataset = data
    trainer.train()
    trainer.evaluate()
    assert len(tracker.trainings("tiny-bert")) == 4 and len(tracker.evaluations("tiny-bert")) == 1
    tracker.close()


# ------------------------------------------------------------------ modeltrail run
def test_modeltrail_run_records_an_unmodified_boosting_script(sqlite_url: str, tmp_path: Path) -> None:
    """The frameworks are imported by the script, after autolog is on: they are patched as they are imported."""
    pytest.importorskip("xgboost")
    pytest.importorskip("lightgbm")
    script = tmp_path / "boost.py"
    script.write_text(
        textwrap.dedent(
            """
            import json
            import lightgbm as lgb
            import xgboost as xgb
            from sklearn.datasets import load_breast_cancer

            X, y = load_breast_cancer(return_X_y=True)
            xgb_result, lgb_result = {}, {}
            dtrain = xgb.DMatrix(X, y)
            xgb.train({"objective": "binary:logistic", "max_depth": 2}, dtrain, 4, evals=[(dtrain, "train")],
                      evals_result=xgb_result, verbose_eval=False)
            lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), 4,
                      valid_sets=[lgb.Dataset(X, y)], valid_names=["train"],
                      callbacks=[lgb.record_evaluation(lgb_result)])
            print(json.dumps({"xgboost": xgb_result, "lightgbm": lgb_result}))
            """
        )
    )
    env = {**os.environ, "MODELTRAIL_URI": sqlite_url}
    # The child imports the modeltrail this process does, whatever its folder.
    env["PYTHONPATH"] = os.pathsep.join([str(Path(modeltrail.__file__).parents[1]), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-m", "modeltrail.cli", "run", str(script)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    results = json.loads(done.stdout.strip().splitlines()[-1])
    tracker = modeltrail.Tracker(sqlite_url)
    for framework in ("xgboost", "lightgbm"):
        (run,) = tracker.trainings(framework)
        assert (run.status, run.version) == ("finished", 1)
        assert_equals_framework_record(tracker, run.id, results[framework])
    tracker.close()
