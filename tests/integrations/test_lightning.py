"""ModeltrailLogger: what a Lightning fit leaves in the ledger, read back through the Tracker."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import uuid
import warnings
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning")

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import modeltrail
from modeltrail import _adapter
from modeltrail import _store as store_mod
from modeltrail.integrations.lightning import ModeltrailLogger

MODEL = "tiny-net"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STEPS = 8  # 32 samples, batches of 8, 2 epochs


class Boom(RuntimeError):
    """The user's own error: it must come out of fit unchanged."""


class TinyNet(L.LightningModule):
    def __init__(self, lr: float = 0.1, hidden: int = 4, opt: dict[str, Any] | None = None, fail_at: int = -1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        self.raised: Boom | None = None

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.global_step == self.hparams.fail_at:
            self.raised = Boom(f"bad batch at step {self.global_step}")
            raise self.raised
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.net(x), y))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", F.cross_entropy(self.net(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def data() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)


def make_trainer(logger: ModeltrailLogger | list[Any], **options: Any) -> L.Trainer:
    settings: dict[str, Any] = {
        "max_epochs": 2,
        "accelerator": "cpu",
        "devices": 1,
        "log_every_n_steps": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "callbacks": [ModelCheckpoint(monitor="val_loss", save_last=True)],
    }
    return L.Trainer(logger=logger, **{**settings, **options})


def fit(url: str | None, module: TinyNet | None = None, **options: Any) -> tuple[ModeltrailLogger, L.Trainer]:
    logger = ModeltrailLogger(MODEL, uri=url, save_dir="runs")
    trainer = make_trainer(logger, **options)
    trainer.fit(module or TinyNet(opt={"name": "sgd", "nesterov": False}), data(), data())
    return logger, trainer


def test_fit_records_hparams_metrics_settings_and_checkpoints(db_url_sqlite_mysql: str) -> None:
    logger, trainer = fit(db_url_sqlite_mysql, gradient_clip_val=0.5, accumulate_grad_batches=1)
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)

    [record] = tracker.trainings(MODEL)
    assert record.status == "finished" and record.version == 1 and record.error is None
    assert record.duration_s is not None and record.duration_s > 0
    assert [(st.name, st.status) for st in record.stages] == [("train", "finished")]
    assert tracker.model(MODEL).framework == "lightning"
    params = record.params
    # save_hyperparameters, flattened
    assert params["lr"] == 0.1 and params["hidden"] == 4 and params["fail_at"] == -1
    assert params["opt.name"] == "sgd" and params["opt.nesterov"] is False
    # the trainer's own settings
    assert params["trainer.max_epochs"] == 2
    assert params["trainer.precision"] == "32-true"
    assert params["trainer.accelerator"] == "cpu"
    assert params["trainer.strategy"] == "single_device"
    assert params["trainer.devices"] == 1
    assert params["trainer.accumulate_grad_batches"] == 1
    assert params["trainer.gradient_clip_val"] == 0.5

    # every logged point, one per step, at Lightning's steps
    history = tracker.metric_history(record.id, "train_loss")
    assert [p.step for p in history] == list(range(STEPS))
    assert record.metrics["train_loss"].count == STEPS
    val = tracker.metric_history(record.id, "val_loss")
    assert [p.step for p in val] == [STEPS // 2 - 1, STEPS - 1]
    assert val[-1].value == pytest.approx(float(trainer.callback_metrics["val_loss"]))
    epochs = tracker.metric_history(record.id, "epoch")
    assert [p.step for p in epochs] == list(range(STEPS))  # Lightning sends it twice at epoch ends: kept once

    # checkpoints: both paths recorded, the best one is the artifact
    checkpoint = trainer.checkpoint_callback
    assert isinstance(checkpoint, ModelCheckpoint)
    best = os.path.abspath(checkpoint.best_model_path)
    info = record.context["checkpoint"]
    assert info["best_path"] == best
    assert info["last_path"] == os.path.abspath(checkpoint.last_model_path)
    assert info["best_score"] == pytest.approx(float(checkpoint.best_model_score))
    assert info["monitor"] == "val_loss"
    assert not [k for k in params if k.startswith("checkpoint.")]
    assert os.path.join("runs", logger.name, logger.version, "checkpoints") in best
    assert record.artifact_path == best
    assert record.artifact_sha256 == hashlib.sha256(Path(best).read_bytes()).hexdigest()
    assert tracker.versions(MODEL)[0].artifact_path == best
    assert logger.model_version is not None and logger.model_version.number == 1


def test_changed_hparam_makes_version_two_with_param_diff(db_url_sqlite_mysql: str) -> None:
    fit(db_url_sqlite_mysql, TinyNet(lr=0.1))
    logger, _ = fit(db_url_sqlite_mysql, TinyNet(lr=0.2))
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)

    v1, v2 = tracker.versions(MODEL)
    assert (v1.number, v2.number) == (1, 2) and v2.parent_number == 1
    assert v2.param_diff["changed"]["lr"] == {"old": 0.1, "new": 0.2}
    assert "hidden" not in v2.param_diff["changed"]
    assert not any(k.startswith("trainer.") for k in v2.param_diff["changed"])
    assert logger.model_version is not None and logger.model_version.number == 2


def test_exception_in_training_step_fails_the_training_and_propagates(db_url_sqlite_mysql: str) -> None:
    module = TinyNet(fail_at=3)
    with pytest.raises(Boom) as caught:
        fit(db_url_sqlite_mysql, module)
    assert caught.value is module.raised  # the user's own exception object, unchanged
    tracker = modeltrail.Tracker(db_url_sqlite_mysql)

    [record] = tracker.trainings(MODEL)
    assert record.status == "failed"
    assert record.error == "stage 'train' failed: Boom: bad batch at step 3"
    assert [(st.name, st.status, st.error) for st in record.stages] == [
        ("train", "failed", "Boom: bad batch at step 3")
    ]
    assert record.version is None and list(tracker.versions(MODEL)) == []
    assert [p.step for p in tracker.metric_history(record.id, "train_loss")] == [0, 1, 2]
    assert record.params["lr"] == 0.1


def test_fit_inside_an_active_training_logs_into_it_and_leaves_it_open(sqlite_url: str) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    with tracker.training("outer-model") as run:
        logger, trainer = fit(None)
        trainer.test(trainer.lightning_module, data())  # still inside the same training
        assert run.status == "running"
        assert logger.training is run
    [record] = tracker.trainings()
    assert record.model == "outer-model" and record.status == "finished" and record.version == 1
    assert record.params["lr"] == 0.1 and record.params["trainer.max_epochs"] == 2
    assert [p.step for p in tracker.metric_history(record.id, "train_loss")] == list(range(STEPS))
    assert "test_loss" in record.metrics
    assert record.artifact_path == record.context["checkpoint"]["best_path"]


def test_validate_before_the_fit_is_not_recorded_test_after_it_is_an_evaluation(sqlite_url: str) -> None:
    module = TinyNet()
    logger = ModeltrailLogger(MODEL, uri=sqlite_url, save_dir="runs")
    trainer = make_trainer(logger)
    with pytest.warns(_adapter.ModeltrailWarning, match=r"trainer\.validate\(\) outside a fit is not recorded"):
        trainer.validate(module, data())
    trainer.fit(module, data(), data())
    assert logger.training is not None and logger.training.status == "finished"
    [tested] = trainer.test(module, data())
    tracker = modeltrail.Tracker(sqlite_url)
    [record] = tracker.trainings(MODEL)
    assert record.status == "finished" and [v.number for v in tracker.versions(MODEL)] == [1]
    assert [p.step for p in tracker.metric_history(record.id, "val_loss")] == [STEPS // 2 - 1, STEPS - 1]
    assert "test_loss" not in record.metrics
    [evaluation] = tracker.evaluations(MODEL)
    assert (evaluation.version, evaluation.metrics) == (1, tested)


def test_unreachable_server_warns_once_and_training_completes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_adapter, "_warned", set())
    url = f"mysql+pymysql://root@127.0.0.1:9/nothing_listens_{uuid.uuid4().hex[:8]}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger, trainer = fit(url)
        ours = [str(w.message) for w in caught if "modeltrail" in str(w.message)]
        store_mod.close_all()  # the spooled rows wait for a later process; do not leak this store
    assert trainer.state.finished and trainer.global_step == STEPS
    # the outage, once; then, as the fit ends and the logger closes its Tracker, where the rows wait
    assert len(ours) == 2 and "unreachable" in ours[0] and "wait in the spool" in ours[1], ours
    # the core spooled the training locally: it ended, with its version made once the server is back
    assert logger.training is not None and logger.training.status == "finished"
    assert isinstance(logger.model_version, modeltrail.PendingVersion)  # made when the server is back


def test_unusable_ledger_path_warns_once_and_training_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_adapter, "_warned", set())
    (tmp_path / "a-file").write_text("not a directory")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger, trainer = fit(f"sqlite:///{tmp_path / 'a-file' / 'ledger.db'}")
    ours = [w for w in caught if issubclass(w.category, _adapter.ModeltrailWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert "starting the training" in str(ours[0].message)
    assert trainer.state.finished and trainer.global_step == STEPS
    assert logger.training is None


def test_failing_hook_warns_once_and_the_fit_finishes(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_adapter, "_warned", set())

    original = modeltrail.Training.log_metric

    def unavailable(self: Any, key: str, value: float, step: int | None = None) -> None:
        if key.startswith("train."):  # the stage's own duration, written when the training ends
            return original(self, key, value, step)
        raise modeltrail.StorageError("database went away")

    monkeypatch.setattr(modeltrail.Training, "log_metric", unavailable)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, trainer = fit(sqlite_url)
    ours = [str(w.message) for w in caught if issubclass(w.category, _adapter.ModeltrailWarning)]
    assert len(ours) == 1 and "ModeltrailLogger.log_metrics" in ours[0], ours  # once, not once per step
    assert trainer.state.finished and trainer.global_step == STEPS
    [record] = modeltrail.Tracker(sqlite_url).trainings(MODEL)
    assert record.status == "finished" and record.version == 1 and record.params["lr"] == 0.1


def test_logger_given_a_tracker_records_into_it_and_pickles_it_as_its_url(sqlite_url: str) -> None:
    tracker = modeltrail.Tracker(sqlite_url)
    logger = ModeltrailLogger(MODEL, tracker=tracker, save_dir="runs")
    make_trainer(logger).fit(TinyNet(), data(), data())
    assert logger.training is not None and logger.training.tracker is tracker
    [record] = tracker.trainings(MODEL)
    assert record.status == "finished" and record.id == logger.training.id
    blob = pickle.dumps(logger)
    assert b"Tracker" not in blob and b"Engine" not in blob
    copy = pickle.loads(blob)
    assert copy.training is None and copy._life.uri == tracker.uri


def test_logger_pickles_as_settings_and_works_after_unpickling(sqlite_url: str) -> None:
    logger = ModeltrailLogger(MODEL, uri=sqlite_url, save_dir="runs")
    # a hand-made call starts the training: a Tracker and a Training are held now
    logger.log_hyperparams(Namespace(lr=0.3, opt=Namespace(name="adam", betas=(0.9, 0.99))))
    assert logger.training is not None
    blob = pickle.dumps(logger)
    assert b"Tracker" not in blob and b"Engine" not in blob
    copy = pickle.loads(blob)
    assert (copy.name, copy.version, copy.save_dir, copy.log_dir) == (
        logger.name,
        logger.version,
        logger.save_dir,
        logger.log_dir,
    )
    assert copy.training is None

    fresh = pickle.loads(pickle.dumps(ModeltrailLogger(MODEL, uri=sqlite_url)))
    make_trainer(fresh).fit(TinyNet(), data(), data())
    tracker = modeltrail.Tracker(sqlite_url)
    running, finished = sorted(tracker.trainings(MODEL), key=lambda r: r.status, reverse=True)
    assert (running.status, finished.status) == ("running", "finished")  # the copy wrote to the same ledger
    assert running.params == {"lr": 0.3, "opt.name": "adam", "opt.betas": [0.9, 0.99]}
    assert finished.params["lr"] == 0.1 and finished.version == 1


def test_name_and_version_are_path_safe() -> None:
    logger = ModeltrailLogger("team a/mnist cnn:v2", uri="sqlite:///x.db")
    other = ModeltrailLogger("team a/mnist cnn:v2", uri="sqlite:///x.db")
    for text in (logger.name, logger.version, other.version):
        assert text and "/" not in text and " " not in text and ":" not in text and not text.startswith(".")
        assert os.path.basename(text) == text
    assert logger.name == "team_a_mnist_cnn_v2"
    assert logger.version != other.version
    assert ModeltrailLogger("m", uri="sqlite:///x.db", version="../a b").version == "a_b"
    assert pickle.loads(pickle.dumps(logger)).version == logger.version


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_records_one_training(db_url_sqlite_mysql: str, tmp_path: Path) -> None:
    env = {**os.environ, "MODELTRAIL_URI": db_url_sqlite_mysql, "PYTHONUNBUFFERED": "1"}
    env.pop("MODELTRAIL_LIGHTNING_RUN_IDS", None)
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "lightning_ddp.py"), "--model", "ddp-net", "--report", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so a hang can be ended with rank 1 included
    )
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"DDP example hung:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (rank0["name"], rank0["version"]) == (rank1["name"], rank1["version"])  # identical on every rank
    assert rank1["training"] is None  # rank 1 never started one

    tracker = modeltrail.Tracker(db_url_sqlite_mysql)
    [record] = tracker.trainings("ddp-net")
    assert record.id == rank0["training"] and record.status == "finished" and record.version == 1
    assert record.params["trainer.strategy"] == "ddp" and record.params["trainer.world_size"] == 2
    for key in ("train_loss", "val_loss", "epoch"):
        steps = [p.step for p in tracker.metric_history(record.id, key)]
        assert steps and len(steps) == len(set(steps)), (key, steps)
    assert [p.step for p in tracker.metric_history(record.id, "train_loss")] == list(range(8))  # 32/rank, batch 8
    assert record.artifact_path and os.path.join(rank0["name"], rank0["version"], "checkpoints") in record.artifact_path
