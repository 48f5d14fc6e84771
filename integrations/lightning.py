"""PyTorch Lightning: ``Trainer(logger=ModeltrailLogger("mnist-cnn"))`` records each fit as a modeltrail training.

What is recorded, and from where:

* hyperparameters from ``save_hyperparameters`` (flattened: ``{"opt": {"lr": 1}}`` -> ``opt.lr``);
* every metric Lightning logs, at the step Lightning gives (``prefix-`` before each key with ``prefix=``);
* the trainer's settings (``trainer.max_epochs``, ``trainer.precision``, ...), read from the Trainer itself;
* what ``Tuner.lr_find`` / ``scale_batch_size`` found (``tuner.lr``, ``tuner.batch_size``): their trial fits
  are not trainings, the user's ``fit`` is;
* ``ModelCheckpoint``'s best and last checkpoint (paths, sha256) in ``context["checkpoint"]``; the best file is
  the artifact; ``fit(ckpt_path=...)``: that file, its sha256 and the training it came from in
  ``context["resumed_from"]``;
* the training data, fingerprinted when the train dataloader's tensors are at hand (``TensorDataset``);
* the outcome: ``finalize("success")`` makes a new model version; an exception in the fit, a failed training;
* ``trainer.validate()`` / ``trainer.test()`` after the fit: an evaluation of the version the fit made (or of the
  version whose checkpoint ``ckpt_path=`` names), on the dataloader's data (fingerprinted when its tensors are
  at hand), one per dataloader.

Finding the Trainer: Lightning hands a logger the Trainer only in ``log_graph(module)`` (``module.trainer``).
Before that, or without it (``enable_autolog_hparams=False``), the logger looks among its callers' frames
(:func:`modeltrail._adapter.find_in_callers`). Without a Trainer the settings are simply not recorded.

Distributed runs: only global rank zero writes; ``name`` and ``version`` are equal on every rank without the
database (``_lightning_trainer.run_id``). The logger pickles as its settings only (a Tracker as its URL).
When a fit or an evaluation ends, the Tracker the logger built is closed (its writer thread stops once no
other Tracker of the database holds it) and the run id it published in ``os.environ`` is taken back.
"""

from __future__ import annotations

import functools
import os
import sys
import weakref
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modeltrail import _adapter as core

core.require("lightning.pytorch", "lightning")

from lightning.fabric.utilities.logger import _add_prefix  # noqa: E402
from lightning.pytorch import Trainer  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers.logger import DummyExperiment, Logger, rank_zero_experiment  # noqa: E402
from lightning.pytorch.utilities.rank_zero import rank_zero_only  # noqa: E402

from modeltrail._config import resolve_uri  # noqa: E402
from modeltrail._dataset import Dataset, path_digest  # noqa: E402
from modeltrail._values import as_metric_value, check_metric_key, check_model_name, flatten  # noqa: E402

from . import _lightning_trainer as lt  # noqa: E402
from ._lightning_trainer import ENV_RUN_IDS, path_safe, run_id, strategy_name, trainer_settings  # noqa: E402

if TYPE_CHECKING:
    from modeltrail._records import EvaluationRecord, PendingVersion, TrainingRecord, VersionRecord
    from modeltrail._tracker import Tracker
    from modeltrail._training import Training

__all__ = ["ENV_RUN_IDS", "ModeltrailLogger", "path_safe", "run_id", "strategy_name", "trainer_settings"]

#: Lightning's name for a logger's runs when none is given (CSVLogger, TensorBoardLogger).
DEFAULT_NAME = "lightning_logs"


class ModeltrailLogger(Logger):
    """A Lightning logger that writes the fit into a modeltrail ledger.

    ``model`` names the model whose versions the fits become (default: the LightningModule's class name);
    ``tracker`` is the :class:`~modeltrail.Tracker` to write into, or ``uri`` the ledger URL (default:
    ``MODELTRAIL_URI``, then ``./modeltrail.db``). ``save_dir`` is where Lightning puts checkpoints
    (``save_dir/name/version/checkpoints``; default: the Trainer's ``default_root_dir``); ``name`` is the
    model's name made path-safe, ``lightning_logs`` without one. ``prefix`` goes before every metric key, joined
    with ``-`` as Lightning's loggers do. One logger records one training: make a new logger for each fit.
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        model: str | None = None,
        *,
        uri: str | None = None,
        tracker: Tracker | None = None,
        save_dir: str | os.PathLike[str] | None = None,
        version: str | None = None,
        prefix: str = "",
        model_type: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        log_checkpoint: bool = True,
    ) -> None:
        super().__init__()
        self._model = check_model_name(model) if model is not None else None
        # The URL is resolved here so that spawned workers log to the same ledger.
        self._life = core.Lifecycle("lightning", tracker if tracker is not None else resolve_uri(uri))
        self._save_dir = os.fspath(save_dir) if save_dir is not None else None
        self._name = path_safe(model) if model is not None else DEFAULT_NAME
        self._origin = lt.next_position()  # what the run id derives from, drawn when first read
        self._version = path_safe(version) if version is not None else None
        self._prefix = prefix
        self._options = {"model_type": model_type, "description": description, "tags": dict(tags) if tags else None}
        self._log_checkpoint = log_checkpoint
        self._tuned: dict[str, Any] = {}  # what a Tuner's trial fits found: params of the fit that follows
        self._fit = lt.FitState()  # lives in one process and one fit: never pickled
        self.evaluations: list[EvaluationRecord] = []  # recorded by validate/test after the fit, in this process

    def __getstate__(self) -> dict[str, Any]:
        if self._version is None:  # a copy is the same logger: same version (no ddp launch reads a pickle's id)
            self._version = path_safe(run_id(self._origin, publish=False))
        return {k: v for k, v in self.__dict__.items() if k not in ("_fit", "evaluations")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)  # the lifecycle comes back as its URL, with no training
        self._fit = lt.FitState()
        self.evaluations = []

    def __repr__(self) -> str:
        return f"ModeltrailLogger(model={self._model!r}, version={self._version!r})"

    # ------------------------------------------------------------ Lightning's view
    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = path_safe(run_id(self._origin))
            weakref.finalize(self, lt.unpublish, self._origin)  # a logger that is gone starts no ddp ranks
        return self._version

    @property
    def save_dir(self) -> str | None:
        return self._save_dir

    @property
    def root_dir(self) -> str | None:
        return os.path.join(self._save_dir, self._name) if self._save_dir is not None else None

    @property
    def log_dir(self) -> str | None:
        return os.path.join(self._save_dir, self._name, self.version) if self._save_dir is not None else None

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The modeltrail :class:`~modeltrail.Training` on rank zero (started on first use)."""
        training = self._ensure_training()
        return training if training is not None else DummyExperiment()

    @property
    def training(self) -> Training | None:
        """The training this logger writes into, once started (rank zero only)."""
        return self._life.training

    @property
    def model_version(self) -> VersionRecord | PendingVersion | None:
        """The model version the finished fit became, if any."""
        return self.training.version if self.training is not None else None

    # ----------------------------------------------------------------- hooks
    @rank_zero_only
    @core.guard("ModeltrailLogger.log_hyperparams")
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        training = self._ensure_training()
        if training is None or training.status != "running":
            return
        training.log_params(flatten(lt.plain_hparams(params)))

    @rank_zero_only
    @core.guard("ModeltrailLogger.log_metrics")
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = _add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR)  # type: ignore[assignment]
        training = self._ensure_training()
        if training is not None and training.status == "running":
            for key, value in lt.new_points(metrics, step, self._fit.last_points):
                training.log_metric(key, value, step)
            return
        stage = lt.trainer_stage(self._trainer())
        if stage in ("validate", "test"):  # an evaluation, recorded when the stage ends (finalize)
            self._fit.evaluated.update(
                (check_metric_key(k), as_metric_value(v, k)) for k, v in metrics.items() if k != "epoch"
            )
        elif training is not None:
            ended = f"training {training.id} has ended; metrics logged after the fit ({', '.join(sorted(metrics))})"
            self._warn_unrecorded("after-fit", f"{ended} are not recorded")

    @rank_zero_only
    @core.guard("ModeltrailLogger.log_graph")
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Lightning hands over the module at each fit's start; its Trainer holds the settings worth recording."""
        trainer = lt.attr_or_none(model, "trainer")
        if isinstance(trainer, Trainer):
            if self._trainer() is not trainer:
                self._fit.trainer = weakref.ref(trainer)
            self._record_trainer_settings()

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        # Read at the end of the fit: best and last paths change with every save until then.
        self._fit.checkpoint = checkpoint_callback

    @rank_zero_only
    @core.guard("ModeltrailLogger.finalize")
    def finalize(self, status: str) -> None:
        """End of a Trainer call. A fit's ``success`` makes the next model version, anything else marks the training
        failed; validate/test record their evaluation; a Tuner's trial fit keeps what it found for the real fit."""
        trainer = self._trainer()
        try:
            if lt.tuner_in(trainer) is not None:
                with core.guarded("ModeltrailLogger: reading the tuner's result"):
                    self._tuned.update(lt.tuner_params(trainer))
                return
            stage = lt.trainer_stage(trainer)
            if stage in ("validate", "test") and self._life.live is None:
                self._record_evaluation(trainer, stage, failed=status not in ("success", "finished"))
                return
            self._end_training(trainer, status)
        finally:
            self._release()

    # -------------------------------------------------------------- internals
    def _end_training(self, trainer: Trainer | None, status: str) -> None:
        training = self._life.live
        if training is None:
            return
        self._record_trainer_settings()
        failed = status not in ("success", "finished")
        if not failed and lt.trainer_stage(trainer) not in (None, "fit"):
            # validate/test/predict in a training started before it (a hand-made log call, an enclosing
            # ``with``): the fit that follows or the ``with`` block ends it.
            return training.flush()
        with core.guarded("ModeltrailLogger: recording the tuner, the training data and the resumed checkpoint"):
            core.log_new_params(training, lt.tuner_params(trainer))  # finders used as callbacks of this fit
            train = lt.dataset_of(lt.attr_or_none(trainer, "train_dataloader"), f"{training.model_name}-train")
            if self._life.owned and isinstance(train, Dataset):  # a joined training's block says what it was fed
                training.set_dataset(train)
            self._record_resume(training, trainer)
        with core.guarded("ModeltrailLogger: recording checkpoints"):
            callback = self._fit.checkpoint or (trainer.checkpoint_callback if trainer is not None else None)
            if isinstance(callback, ModelCheckpoint):
                lt.record_checkpoint(training, callback, log_file=self._log_checkpoint)
        if failed:
            exc = sys.exc_info()[1]  # Lightning calls finalize("failed") inside its ``except`` for the fit
            error = f"{type(exc).__name__}: {exc}" if exc is not None else None
            self._life.end("failed", error=error or f"Lightning ended the fit with status {status!r}")
        else:
            self._life.end("finished")  # flushed only when an enclosing ``with`` / @autolog owns the training

    def _ensure_training(self) -> Training | None:
        if self._life.training is None and not self._life.disabled:
            trainer = self._trainer()
            module = lt.module_of(trainer)
            options = {**self._options, "model_type": self._options["model_type"] or lt.model_type_of(module)}
            if module is not None:
                options["model_class"] = module  # in the owned training's context
            training = self._life.open(self._model_name(module), allowed=lambda: self._in_fit(trainer), **options)
            if training is not None:
                with core.guarded("ModeltrailLogger: recording the tuner"):
                    core.log_new_params(training, self._tuned)
            self._record_trainer_settings()
        return self._life.training

    def _model_name(self, module: Any) -> str:
        """The model the fits become: the one given, else the LightningModule's class name."""
        if self._model is not None:
            return self._model
        return check_model_name(type(module).__name__) if module is not None else self._name

    @staticmethod
    def _in_fit(trainer: Trainer | None) -> bool:
        """Only a fit is a training: validate/test/predict on their own, or a Tuner's trial fit, are not."""
        return lt.trainer_stage(trainer) in (None, "fit") and lt.tuner_in(trainer) is None

    def _trainer(self) -> Trainer | None:
        """The Trainer running this logger: handed over by ``log_graph``, else found among the callers."""
        trainer = self._fit.trainer() if self._fit.trainer is not None else None
        if trainer is None:
            trainer = core.find_in_callers(functools.partial(lt.trainer_in, logger=self), depth=24)
            if trainer is not None:
                self._fit.trainer = weakref.ref(trainer)
        return trainer

    def _record_trainer_settings(self) -> None:
        trainer, training = self._fit.trainer() if self._fit.trainer else None, self._life.live
        if self._fit.settings_logged or trainer is None or training is None:
            return
        self._fit.settings_logged = True
        with core.guarded("ModeltrailLogger: recording trainer settings"):
            # Settings the logger finds itself never overwrite what is already recorded (a shared training).
            core.log_new_params(training, trainer_settings(trainer))

    def _record_resume(self, training: Training, trainer: Trainer | None) -> None:
        """``fit(ckpt_path=...)``: the checkpoint, its sha256 and the training that wrote it, in the context."""
        checkpoint = lt.attr_or_none(trainer, "ckpt_path")
        if not checkpoint:
            return
        path, digest = _checkpoint_file(checkpoint)
        info: dict[str, Any] = {"path": path, "sha256": digest}
        origin = self._checkpoint_origin(training.tracker, training.model_name, path, digest, exclude=training.id)
        if origin is not None:
            info.update(training=origin.id, model=origin.model, version=origin.version)
        training.add_context({"resumed_from": info})

    @staticmethod
    def _checkpoint_origin(
        tracker: Tracker, model: str, path: str, digest: str | None, *, exclude: int | None = None
    ) -> TrainingRecord | None:
        """The training of ``model`` whose fit wrote the checkpoint at ``path`` (with that sha256), if any."""
        from modeltrail import NotFoundError

        try:
            trainings = [t for t in tracker.trainings(model) if t.id != exclude]
        except NotFoundError:  # no such model yet
            return None
        return lt.checkpoint_origin(path, digest, trainings)

    def _record_evaluation(self, trainer: Trainer | None, stage: str, *, failed: bool) -> None:
        """validate/test after a fit: one evaluation per dataloader of the version the evaluated weights came from."""
        metrics, self._fit.evaluated = self._fit.evaluated, {}
        if failed or not metrics or trainer is None:
            return
        target = self._evaluated_version(trainer)
        if target is None:
            return
        tracker, model, number = target
        loaders = lt.evaluation_loaders(trainer, stage)
        label = "val" if stage == "validate" else "test"
        for i, values in enumerate(lt.split_by_dataloader(metrics, len(loaders))):
            if not values:
                continue
            name = f"{model}-{label}" + (f"-{i}" if i else "")
            dataset = lt.dataset_of(loaders[i], name) if i < len(loaders) else name
            self.evaluations.append(
                tracker.evaluate(
                    model, version=number, dataset=dataset, metrics=values, description=f"trainer.{stage}()"
                )
            )

    def _evaluated_version(self, trainer: Trainer) -> tuple[Tracker, str, int] | None:
        """(Tracker, model, version number) of the weights validate/test ran on, or None (said once, in a warning).

        With ``ckpt_path`` (``test()`` after a fit loads the best checkpoint): the version whose fit wrote that file.
        Without: the version this logger's fit just made.
        """
        stage = lt.trainer_stage(trainer)
        training = self._life.training
        checkpoint = lt.attr_or_none(trainer, "ckpt_path")
        if checkpoint:
            path, digest = _checkpoint_file(checkpoint)
            tracker = training.tracker if training is not None else self._life.tracker
            model = training.model_name if training is not None else self._model_name(lt.module_of(trainer))
            origin = self._checkpoint_origin(tracker, model, path, digest)
            if origin is not None and origin.version is not None:
                return tracker, origin.model, origin.version
            what = f"trainer.{stage}(ckpt_path={path!r}) is not recorded: no finished fit of {model!r} wrote it"
        elif training is not None and training.version:  # a PendingVersion (its end spooled) has no number yet
            return training.tracker, training.model_name, training.version.number
        else:
            what = f"trainer.{stage}() outside a fit is not recorded: this logger's fit made no version to evaluate"
        hint = (
            "Fit first, or pass ckpt_path= a checkpoint a tracked fit wrote, to record an evaluation of that version."
        )
        self._warn_unrecorded("outside-fit", what, hint)
        return None

    def _release(self) -> None:
        """A Trainer call ended: take back the published run id and close the Tracker this logger built (its writer
        stops once no other Tracker holds it); not while a training of this logger's own is still open."""
        lt.unpublish(self._origin)
        if self._life.live is None or not self._life.owned:
            with core.guarded("ModeltrailLogger: closing the ledger"):
                self._life.close()

    def _warn_unrecorded(self, kind: str, what: str, hint: str | None = None) -> None:
        """Once per logger and kind ("outside-fit", "after-fit"): say what is not recorded and how to keep it."""
        hint = hint or "Wrap fit and test in `with tracker.training(...)` (or @autolog) to record them in one training."
        self._life.tell_once(kind, f"{self._model_name(None)!r}: {what}. {hint}")


def _checkpoint_file(checkpoint: Any) -> tuple[str, str | None]:
    """(path, sha256): a local file by its absolute path and content; a URL as given, without a digest."""
    text = os.fspath(checkpoint)
    if "://" in text:
        return text, None
    path = os.path.abspath(text)
    return path, path_digest(path)[0] if os.path.isfile(path) else None
