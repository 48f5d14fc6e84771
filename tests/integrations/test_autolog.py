"""Autolog: the decorator, enable/disable patching and `modeltrail run`, asserted through the rows."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modeltrail

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(n_samples=120, n_features=5, random_state=0)


@pytest.fixture(autouse=True)
def _no_autolog_left_behind():
    yield
    modeltrail.disable_autolog()


def test_decorator_records_arguments_result_and_inner_fit(db_url_sqlite_mysql: str, data) -> None:
    X, y = data
    original = LogisticRegression.fit

    @modeltrail.autolog(model="deco", uri=db_url_sqlite_mysql)
    def train(X, y, *, C: float = 1.0, tags: list[str] | None = None) -> dict:
        model = LogisticRegression(C=C, max_iter=200).fit(X, y)  # a plain fit, no adapter in sight
        return {"train_acc": model.score(X, y), "nested": {"n": 3}, "note": "not a number"}

    result = train(X, y, C=0.5)
    assert result["nested"] == {"n": 3}
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    (record,) = tracker.trainings("deco")
    assert record.status == "finished" and record.version == 1
    assert record.params["X"] == "numpy.ndarray(shape=120x5, dtype=float64)"
    assert record.params["y"] == "numpy.ndarray(shape=120, dtype=int64)"
    assert record.params["C"] == 0.5 and record.params["tags"] is None
    assert record.params["max_iter"] == 200  # from the captured LogisticRegression fit
    assert record.metrics["train_acc"].last == pytest.approx(result["train_acc"])
    assert record.metrics["nested.n"].last == 3.0 and "note" not in record.metrics
    assert "accuracy" in record.metrics and record.artifact_path  # the inner fit's metrics and model
    assert len(tracker.models()) == 1  # the inner fit made no model of its own
    assert LogisticRegression.fit is original  # the patches left with the call


def test_decorator_failure_is_recorded_and_propagates(db_url_sqlite_mysql: str) -> None:
    @modeltrail.autolog(model="deco", uri=db_url_sqlite_mysql)
    def train(epochs: int) -> None:
        raise ValueError(f"diverged at epoch {epochs}")

    with pytest.raises(ValueError, match="diverged at epoch 3"):
        train(3)
    (record,) = modeltrail.Tracker(db_url_sqlite_mysql).trainings("deco")
    assert record.status == "failed" and "diverged at epoch 3" in (record.error or "")
    assert record.version is None and record.params == {"epochs": 3}


def test_enable_autolog_records_plain_fits_once_and_disable_restores(db_url_sqlite_mysql: str, data) -> None:
    X, y = data
    original = RandomForestClassifier.fit
    modeltrail.enable_autolog(db_url_sqlite_mysql)
    assert RandomForestClassifier.fit is not original
    RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3).fit(X, y)
    modeltrail.disable_autolog()
    assert RandomForestClassifier.fit is original
    RandomForestClassifier(n_estimators=5).fit(X, y)  # not recorded any more

    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    names = sorted(m.name for m in tracker.models())
    assert names == ["LogisticRegression", "Pipeline", "RandomForestClassifier"]
    (forest,) = tracker.trainings("RandomForestClassifier")
    assert forest.params["n_estimators"] == 5 and forest.metrics["accuracy"].last > 0.5
    assert len(tracker.trainings("Pipeline")) == 1  # its steps are not recorded on their own
    (search,) = tracker.trainings("LogisticRegression")  # named after what it searches; one training, not 6 folds
    assert search.params["best.C"] in (0.1, 1.0) and "cv_best_score" in search.metrics


def test_autolog_never_breaks_training_when_modeltrail_fails(data) -> None:
    X, y = data
    modeltrail.enable_autolog("nosuchdriver://nowhere/db")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = RandomForestClassifier(n_estimators=3).fit(X, y)
    assert model.predict(X).shape == (120,)
    assert len([w for w in caught if "modeltrail" in str(w.message)]) == 1


def test_keras_fit_is_recorded_by_autolog(db_url_sqlite_mysql: str) -> None:
    keras = pytest.importorskip("keras")
    modeltrail.enable_autolog(db_url_sqlite_mysql, model="keras-auto")
    x = np.random.default_rng(0).random((32, 4)).astype("float32")
    y = (x[:, 0] > 0.5).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, epochs=2, validation_split=0.25, verbose=0)
    (record,) = modeltrail.Tracker(db_url_sqlite_mysql).trainings("keras-auto")
    assert record.status == "finished" and record.version == 1
    assert record.metrics["loss"].count == 2 and record.metrics["val_loss"].count == 2


def test_lightning_fit_is_recorded_by_autolog(db_url_sqlite_mysql: str, tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(pl.LightningModule):
        def __init__(self, lr: float = 0.1) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(3, 1)

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    modeltrail.enable_autolog(db_url_sqlite_mysql)
    loader = DataLoader(TensorDataset(torch.randn(16, 3), torch.randn(16, 1)), batch_size=4)
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, log_every_n_steps=1,
    )  # fmt: skip
    trainer.fit(Tiny(), loader)
    assert trainer.loggers == []  # the user's trainer is left as it was
    (record,) = modeltrail.Tracker(db_url_sqlite_mysql).trainings("Tiny")
    assert record.status == "finished" and record.params["lr"] == 0.1
    assert record.metrics["train_loss"].count == 4


def _run(args: list[str], url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELTRAIL_URI": url}
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def test_modeltrail_run_records_an_unmodified_script(db_url_sqlite_mysql: str, tmp_path: Path) -> None:
    done = _run([sys.executable, "-m", "modeltrail.cli", "run", str(EXAMPLES / "plain_script.py"), "--depth", "6"],
                db_url_sqlite_mysql, tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "trained a forest of depth 6" in done.stdout
    (record,) = modeltrail.Tracker(db_url_sqlite_mysql).trainings("RandomForestClassifier")
    assert record.params["max_depth"] == 6 and record.version == 1
    assert record.metrics["accuracy"].last > 0.5 and Path(record.artifact_path or "").exists()
    assert record.dataset is not None and record.dataset.n_rows == 300
    assert record.context["command"][-2:] == ["--depth", "6"]
    # the script's scaler is the forest's preprocessing, not a model of its own
    assert [m.name for m in modeltrail.Tracker(db_url_sqlite_mysql).models()] == ["RandomForestClassifier"]
    assert record.params["preprocessing.StandardScaler.with_mean"] is True


def test_decorator_example_leaves_two_versions(db_url_sqlite_mysql: str, tmp_path: Path) -> None:
    done = _run([sys.executable, str(EXAMPLES / "autolog_decorator.py")], db_url_sqlite_mysql, tmp_path)
    assert done.returncode == 0, done.stderr
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    versions = tracker.versions("churn-gbm")
    assert [v.number for v in versions] == [1, 2]
    assert versions[1].param_diff["changed"]["learning_rate"] == {"old": 0.1, "new": 0.3}
    for record in tracker.trainings("churn-gbm"):
        assert record.duration_s and record.metrics["val_auc"].count == 1
        assert record.params["X"].startswith("numpy.ndarray(shape=400x8")
