"""Lightning's logger contract, checked against ModeltrailLogger here, and Lightning's CSVLogger as the reference.

Lightning's own ``tests_pytorch/loggers/test_all.py`` runs on a local checkout through
``test_lightning_upstream.py``; this file reproduces each of its checks (fit then test, pickling, tuners keep the
logger, rank zero only, prefix, default name) plus the rest of the ``Logger`` interface (hyperparameters,
directories, ``after_save_checkpoint``, several loggers at once), with what the ledger holds afterwards.
"""

from __future__ import annotations

import csv
import gc
import os
import pickle
import threading
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning")

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.logger import DummyExperiment
from lightning.pytorch.tuner.tuning import Tuner
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from tests.integrations.test_lightning import MODEL, STEPS, TinyNet, data, make_trainer

import modeltrail
from modeltrail.integrations.lightning import ENV_RUN_IDS, ModeltrailLogger


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "modeltrail-writer"]


class CustomModel(BoringModel):
    """test_loggers_fit_test_all's model."""

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        loss = self.step(batch)
        self.log("train_some_val", loss)
        return {"loss": loss}

    def on_validation_epoch_end(self) -> None:
        self.log_dict({"early_stop_on": torch.tensor(1), "val_loss": torch.tensor(0.5)})

    def on_test_epoch_end(self) -> None:
        self.log("test_loss", torch.tensor(2))


class StoreHistoryLogger(ModeltrailLogger):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history: list[tuple[int | None, dict[str, float]]] = []

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        super().log_metrics(metrics, step)
        self.history.append((step, metrics))


def test_fit_then_test_calls_and_records_what_lightning_logs(sqlite_url: str, tmp_path: Path) -> None:
    logger = StoreHistoryLogger(uri=sqlite_url)
    trainer = Trainer(
        default_root_dir=tmp_path, max_epochs=1, logger=logger, limit_train_batches=1, limit_val_batches=1,
        log_every_n_steps=1, enable_progress_bar=False,
    )  # fmt: skip
    trainer.fit(CustomModel())
    trainer.test()
    assert [(s, sorted(m)) for s, m in logger.history] == [
        (0, ["epoch", "train_some_val"]),
        (0, ["early_stop_on", "epoch", "val_loss"]),
        (1, ["epoch", "test_loss"]),
    ]
    tracker = modeltrail.Tracker(sqlite_url)
    [record] = tracker.trainings("CustomModel")  # no model given: the module's class names it
    assert sorted(record.metrics) == ["early_stop_on", "epoch", "train.duration_s", "train_some_val", "val_loss"]
    assert [(p.step, p.value) for p in tracker.metric_history(record.id, "val_loss")] == [(0, 0.5)]
    [evaluation] = tracker.evaluations("CustomModel")
    assert (evaluation.version, evaluation.metrics) == (1, {"test_loss": 2.0})  # test() loaded the best checkpoint
    assert writer_threads() == [] and ENV_RUN_IDS not in os.environ


def test_pickles_with_its_trainer_and_logs_after_unpickling(sqlite_url: str) -> None:
    logger = ModeltrailLogger(uri=sqlite_url, save_dir="pickled")
    training = logger.experiment  # a training started by hand
    logger.log_metrics({"a": 1})
    logger.save()
    pickle.dumps(logger)
    trainer2 = pickle.loads(pickle.dumps(Trainer(max_epochs=1, logger=logger)))
    trainer2.logger.log_metrics({"acc": 1.0})
    assert (trainer2.logger.name, trainer2.logger.save_dir, trainer2.logger.version) == (
        logger.name, logger.save_dir, logger.version,
    )  # fmt: skip
    assert ENV_RUN_IDS not in os.environ  # pickling read the version without publishing it
    logger.finalize("success")
    trainer2.logger.finalize("success")
    tracker = modeltrail.Tracker(sqlite_url)
    first, copy = tracker.trainings("lightning_logs")
    assert first.id == training.id and first.metrics["a"].last == 1.0 and first.version == 1
    assert copy.metrics["acc"].last == 1.0 and copy.version == 2
    tracker.close()
    assert writer_threads() == []


@pytest.mark.parametrize("tuner_method", ["lr_find", "scale_batch_size"])
def test_tuners_keep_the_logger(sqlite_url: str, tmp_path: Path, tuner_method: str) -> None:
    class Model(BoringModel):
        def __init__(self, lr: float = 0.1, batch_size: int = 1) -> None:
            super().__init__()
            self.save_hyperparameters()

    logger = ModeltrailLogger(uri=sqlite_url)
    model = Model()
    trainer = Trainer(default_root_dir=tmp_path, max_epochs=1, logger=logger, enable_progress_bar=False)
    getattr(Tuner(trainer), tuner_method)(model)
    assert trainer.logger is logger and model.logger is logger
    assert logger.training is None and writer_threads() == [] and ENV_RUN_IDS not in os.environ


def test_only_rank_zero_records(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    logger = ModeltrailLogger(MODEL, uri=sqlite_url)
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert isinstance(logger.experiment, DummyExperiment)
    assert logger.experiment.something(foo="bar") is None
    logger.log_metrics({"x": 1.0}, step=0)
    logger.log_hyperparams({"lr": 1})
    assert logger.training is None
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    assert isinstance(logger.experiment, modeltrail.Training)


def test_prefix_and_hyperparameters_as_every_lightning_logger_takes_them(sqlite_url: str) -> None:
    logger = ModeltrailLogger(MODEL, uri=sqlite_url, prefix="tmp")
    logger.log_metrics({"test": 1.0}, step=0)
    logger.log_hyperparams(Namespace(lr=0.3, opt=Namespace(name="adam"), layers=[1, 2]))
    logger.log_hyperparams({"extra": {"depth": 2}})
    logger.finalize("success")
    tracker = modeltrail.Tracker(sqlite_url)
    [record] = tracker.trainings(MODEL)
    assert [(p.step, p.value) for p in tracker.metric_history(record.id, "tmp-test")] == [(0, 1.0)]
    assert record.params == {"lr": 0.3, "opt.name": "adam", "layers": [1, 2], "extra.depth": 2}


def test_directories_name_and_version() -> None:
    logger = ModeltrailLogger(MODEL, uri="sqlite:///x.db", save_dir="out", version="v1")
    assert (logger.name, logger.version, logger.save_dir) == (MODEL, "v1", "out")
    assert (logger.root_dir, logger.log_dir) == (os.path.join("out", MODEL), os.path.join("out", MODEL, "v1"))
    default = ModeltrailLogger(uri="sqlite:///x.db")
    assert default.name == "lightning_logs" and default.save_dir is None and default.log_dir is None
    assert default.version and default.version != ModeltrailLogger(uri="sqlite:///x.db").version
    assert ENV_RUN_IDS in os.environ  # read outside a fit: published for a ddp launch that may follow...
    del default
    gc.collect()
    assert ENV_RUN_IDS not in os.environ  # ...and taken back with the logger


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_next_to_csvlogger_every_point_equals_its_file(db_url_sqlite_mysql: str) -> None:
    """Several loggers at once; CSVLogger's metrics.csv is Lightning's own record of the same calls."""
    reference = CSVLogger("csv", name="ref")
    ours = ModeltrailLogger(MODEL, uri=db_url_sqlite_mysql, save_dir="runs")
    trainer = make_trainer([reference, ours])
    module = TinyNet()
    trainer.fit(module, data(), data())
    checkpoint = trainer.checkpoint_callback
    assert isinstance(checkpoint, ModelCheckpoint)
    assert checkpoint.dirpath == os.path.join(reference.log_dir, "checkpoints")  # the first logger's directory
    fit_rows = read_csv(os.path.join(reference.log_dir, "metrics.csv"))
    trainer.validate(module, data())
    trainer.test(module, data())
    eval_rows = read_csv(os.path.join(reference.log_dir, "metrics.csv"))[len(fit_rows) :]
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    [record] = tracker.trainings(MODEL)

    keys = {k for row in fit_rows for k, v in row.items() if v and k != "step"}
    assert keys == {"train_loss", "val_loss", "epoch"} and keys <= set(record.metrics)
    for key in sorted(keys):
        expected = [(int(row["step"]), float(row[key])) for row in fit_rows if row[key]]
        if key == "epoch":  # Lightning sends it with the step's train and val logs alike: one point per step
            expected = sorted(set(expected))
        got = [(p.step, p.value) for p in tracker.metric_history(record.id, key)]
        assert got == expected, key
    assert len(tracker.metric_history(record.id, "train_loss")) == STEPS

    validation, test = tracker.evaluations(MODEL, version=1)
    [val_row, test_row] = eval_rows
    assert validation.metrics == {"val_loss": float(val_row["val_loss"])}
    assert test.metrics == {"test_loss": float(test_row["test_loss"])}
    assert record.context["checkpoint"]["best_path"] == os.path.abspath(checkpoint.best_model_path)
