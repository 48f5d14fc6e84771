"""ModeltrailLogger in the workflows people run around a fit: the Tuner, test/validate, resuming, prefixes.

Each test reads back what a user would: the trainings, versions, evaluations and lineage in the ledger, and
what is left in the process (writer threads, environment variables) once the Trainer call returned.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning")

import lightning.pytorch as L
import torch
from lightning.pytorch.tuner import Tuner
from tests.integrations.test_lightning import MODEL, STEPS, TinyNet, data, make_trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import modeltrail
from modeltrail import ModeltrailWarning
from modeltrail.cli import main
from modeltrail.integrations.lightning import ENV_RUN_IDS, ModeltrailLogger


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "modeltrail-writer"]


def tensors() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    return x, (x[:, 0] > 0).long()


class BatchNet(TinyNet):
    """Makes its own loaders from ``batch_size``, as ``Tuner.scale_batch_size`` needs."""

    def __init__(self, batch_size: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        x, y = tensors()
        return DataLoader(TensorDataset(x, y), batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return data()


class TwoValNet(TinyNet):
    """Validates on several dataloaders."""

    def validation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        super().validation_step(batch, batch_idx)


class LossNet(TinyNet):
    """Holds its loss as a module: the logger can tell it is a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.loss = nn.CrossEntropyLoss()


def test_lr_find_then_fit_is_one_training_with_the_suggestion(
    db_url_sqlite_mysql: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server ledger with an artifact store: no "configure a store" notice among the warnings checked below.
    monkeypatch.setenv("MODELTRAIL_ARTIFACTS", str(tmp_path / "store"))
    logger = ModeltrailLogger(MODEL, uri=db_url_sqlite_mysql, save_dir="runs")
    trainer = make_trainer(logger)
    module = TinyNet()
    big = DataLoader(TensorDataset(torch.randn(256, 4), torch.randint(0, 2, (256,))), batch_size=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        finder = Tuner(trainer).lr_find(module, big, data(), min_lr=1e-4, max_lr=1.0, num_training=30)
        assert finder is not None and finder.suggestion() is not None
        assert logger.training is None  # the tuner's trial fit is no training
        trainer.fit(module, data(), data())
    assert not [str(w.message) for w in caught if issubclass(w.category, ModeltrailWarning)]
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)

    [record] = tracker.trainings(MODEL)  # one fit called by the user: one training
    assert record.status == "finished" and record.version == 1
    assert record.params["lr"] == 0.1  # what save_hyperparameters recorded, as every Lightning logger logs it
    assert record.params["tuner.lr"] == finder.suggestion() == module.hparams.lr  # what the fit really used
    assert record.params["trainer.max_epochs"] == 2
    assert [p.step for p in tracker.metric_history(record.id, "train_loss")] == list(range(STEPS))
    assert [v.number for v in tracker.versions(MODEL)] == [1]


def test_scale_batch_size_then_fit_is_one_training_with_the_batch_size(sqlite_url: str) -> None:
    logger = ModeltrailLogger(MODEL, uri=sqlite_url, save_dir="runs")
    trainer = make_trainer(logger, max_epochs=1, callbacks=[])
    module = BatchNet()
    found = Tuner(trainer).scale_batch_size(module, mode="power", steps_per_trial=1, max_trials=3)
    assert found == module.batch_size == 8  # 2 -> 4 -> 8: three trials, all fit
    assert logger.training is None
    trainer.fit(module)
    tracker = modeltrail.Tracker(sqlite_url)

    [record] = tracker.trainings(MODEL)
    assert record.status == "finished" and record.version == 1
    assert record.params["tuner.batch_size"] == 8
    assert [p.step for p in tracker.metric_history(record.id, "train_loss")] == [0, 1, 2, 3]  # 32 rows, batches of 8


def test_test_and_validate_after_fit_are_evaluations_of_its_version(db_url_sqlite_mysql: str) -> None:
    logger = ModeltrailLogger(MODEL, uri=db_url_sqlite_mysql, save_dir="runs")
    trainer = make_trainer(logger)
    module = TwoValNet()
    trainer.fit(module, data(), data())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModeltrailWarning)
        [tested] = trainer.test(module, data())
        validated = trainer.validate(
            module, [data(), DataLoader(TensorDataset(torch.ones(8, 4), torch.ones(8).long()))]
        )
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)

    assert [v.number for v in tracker.versions(MODEL)] == [1] and len(tracker.trainings(MODEL)) == 1
    test_eval, val0, val1 = tracker.evaluations(MODEL, version=1)
    x, y = tensors()
    digest = modeltrail.Dataset.from_arrays(x, y, name="any").digest
    # key by key what trainer.test() / validate() returned, on the data each dataloader held
    assert (test_eval.dataset, test_eval.dataset_digest, test_eval.metrics) == (f"{MODEL}-test", digest, tested)
    assert (val0.dataset, val0.dataset_digest) == (f"{MODEL}-val", digest)
    assert val0.metrics == {"val_loss": validated[0]["val_loss/dataloader_idx_0"]}
    ones = modeltrail.Dataset.from_arrays(torch.ones(8, 4), torch.ones(8).long(), name="any").digest
    assert (val1.dataset, val1.dataset_digest) == (f"{MODEL}-val-1", ones)
    assert val1.metrics == {"val_loss": validated[1]["val_loss/dataloader_idx_1"]}
    assert test_eval.description == "trainer.test()" and val0.description == "trainer.validate()"
    assert [e.id for e in logger.evaluations] == [test_eval.id, val0.id, val1.id]
    [record] = tracker.trainings(MODEL)
    assert "test_loss" not in record.metrics  # an evaluation, not a metric of the training
    assert record.dataset is not None and (record.dataset.name, record.dataset.digest) == (f"{MODEL}-train", digest)
    assert record.dataset.n_rows == 32 and record.dataset.n_features == 4


def test_test_without_a_fit_warns_once_or_evaluates_the_checkpoints_version(sqlite_url: str) -> None:
    first = ModeltrailLogger(MODEL, uri=sqlite_url, save_dir="runs")
    trained = make_trainer(first)
    trained.fit(TinyNet(), data(), data())
    best = trained.checkpoint_callback.best_model_path  # type: ignore[union-attr]

    logger = ModeltrailLogger(MODEL, uri=sqlite_url, save_dir="runs")
    trainer = make_trainer(logger)
    with pytest.warns(ModeltrailWarning, match=r"trainer\.test\(\) outside a fit is not recorded") as caught:
        trainer.test(TinyNet(), data())
        trainer.test(TinyNet(), data())  # said once
    assert len([w for w in caught if issubclass(w.category, ModeltrailWarning)]) == 1
    tracker = modeltrail.Tracker(sqlite_url)
    assert list(tracker.evaluations(MODEL)) == []

    [tested] = trainer.test(TinyNet(), data(), ckpt_path=best)  # the weights of version 1
    [evaluation] = tracker.evaluations(MODEL)
    assert (evaluation.version, evaluation.metrics) == (1, tested)
    assert len(tracker.trainings(MODEL)) == 1  # testing made no training


def test_fit_from_a_checkpoint_records_it_and_its_training_in_the_lineage(
    db_url_sqlite_mysql: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = ModeltrailLogger(MODEL, uri=db_url_sqlite_mysql, save_dir="runs")
    trainer = make_trainer(first, max_epochs=1)
    trainer.fit(TinyNet(), data(), data())
    last = trainer.checkpoint_callback.last_model_path  # type: ignore[union-attr]
    digest = hashlib.sha256(Path(last).read_bytes()).hexdigest()

    resumed = ModeltrailLogger(MODEL, uri=db_url_sqlite_mysql, save_dir="runs")
    again = make_trainer(resumed, max_epochs=2)
    again.fit(TinyNet(), data(), data(), ckpt_path=last)
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    one, two = tracker.trainings(MODEL)
    assert two.context["resumed_from"] == {
        "path": os.path.abspath(last),
        "sha256": digest,
        "training": one.id,
        "model": MODEL,
        "version": 1,
    }
    assert [p.step for p in tracker.metric_history(two.id, "train_loss")] == list(range(STEPS // 2, STEPS))
    assert main(["lineage", MODEL, "2", "--uri", db_url_sqlite_mysql]) == 0
    out = capsys.readouterr().out
    assert f"resumed  {os.path.abspath(last)} sha256 {digest}, training {one.id} (version 1)" in out

    # a checkpoint no tracked fit wrote: its path and content only
    foreign = Path("foreign.ckpt")
    checkpoint = torch.load(last, weights_only=False)
    torch.save({**checkpoint, "copied_by": "someone else"}, foreign)
    third = ModeltrailLogger(MODEL, uri=db_url_sqlite_mysql, save_dir="runs")
    make_trainer(third, max_epochs=2).fit(TinyNet(), data(), data(), ckpt_path=foreign)
    info = tracker.trainings(MODEL)[-1].context["resumed_from"]
    assert info == {"path": str(foreign.resolve()), "sha256": hashlib.sha256(foreign.read_bytes()).hexdigest()}


def test_prefix_joins_with_a_dash_like_lightnings_loggers(sqlite_url: str) -> None:
    logger = ModeltrailLogger(MODEL, uri=sqlite_url, save_dir="runs", prefix="tmp")
    make_trainer(logger).fit(TinyNet(), data(), data())
    [record] = modeltrail.Tracker(sqlite_url).trainings(MODEL)
    assert {"tmp-train_loss", "tmp-val_loss", "tmp-epoch"} <= set(record.metrics)
    assert not {"train_loss", "val_loss"} & set(record.metrics)
    assert record.context["checkpoint"]["monitor"] == "val_loss"  # Lightning's own keys are untouched


def test_no_writer_thread_or_environment_variable_outlives_the_fit_or_the_test(sqlite_url: str) -> None:
    assert writer_threads() == [] and ENV_RUN_IDS not in os.environ
    logger = ModeltrailLogger(MODEL, uri=sqlite_url, save_dir="runs")
    assert ENV_RUN_IDS not in os.environ  # making a logger publishes nothing
    trainer = make_trainer(logger)
    module = TinyNet()
    trainer.fit(module, data(), data())
    assert writer_threads() == [] and ENV_RUN_IDS not in os.environ
    trainer.test(module, data())
    assert writer_threads() == [] and ENV_RUN_IDS not in os.environ
    assert len(modeltrail.Tracker(sqlite_url).evaluations(MODEL)) == 1

    # read before the fit: published for a ddp launch that may follow, taken back when the fit ends
    early = ModeltrailLogger(MODEL, uri=sqlite_url, save_dir="runs")
    version = early.version
    owner, _, listed = os.environ[ENV_RUN_IDS].partition(":")
    assert owner == str(os.getpid()) and listed.split(",")[-1] == version
    make_trainer(early).fit(TinyNet(), data(), data())
    assert ENV_RUN_IDS not in os.environ


def test_a_given_tracker_is_left_open(sqlite_url: str) -> None:
    with modeltrail.Tracker(sqlite_url) as tracker:
        logger = ModeltrailLogger(MODEL, tracker=tracker, save_dir="runs")
        make_trainer(logger).fit(TinyNet(), data(), data())
        assert len(writer_threads()) == 1  # the user's Tracker still holds its writer
        with tracker.training("other") as run:
            run.log_metric("m", 1.0)
        assert [r.model for r in tracker.trainings()] == [MODEL, "other"]
    assert writer_threads() == []


def test_model_defaults_to_the_module_class_and_type_from_its_loss(sqlite_url: str) -> None:
    logger = ModeltrailLogger(uri=sqlite_url)
    assert logger.name == "lightning_logs"
    make_trainer(logger, default_root_dir="runs").fit(LossNet(), data(), data())
    tracker = modeltrail.Tracker(sqlite_url)
    [record] = tracker.trainings("LossNet")
    assert record.context["model_class"] == f"{LossNet.__module__}.LossNet"
    assert tracker.model("LossNet").model_type == "classifier"
    assert (
        os.path.join("runs", "lightning_logs", logger.version, "checkpoints")
        in record.context["checkpoint"]["best_path"]
    )

    plain = ModeltrailLogger(MODEL, uri=sqlite_url, save_dir="runs")
    make_trainer(plain).fit(TinyNet(), data(), data())  # F.cross_entropy in its step: nothing to tell from
    assert tracker.model(MODEL).model_type is None
    assert tracker.trainings(MODEL)[0].context["model_class"] == f"{TinyNet.__module__}.TinyNet"


@pytest.mark.parametrize("loss", [nn.MSELoss(), nn.BCEWithLogitsLoss()])
def test_model_type_from_the_loss_module(loss: nn.Module) -> None:
    from modeltrail.integrations._lightning_trainer import model_type_of

    class Net(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(2, 1)
            self.criterion = loss

    assert model_type_of(Net()) == ("regressor" if isinstance(loss, nn.MSELoss) else "classifier")
    assert model_type_of(object()) is None
