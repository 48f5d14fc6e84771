"""PyTorch Lightning: ``Trainer(logger=ModeltrailLogger("mnist-cnn"))`` records each fit as a modeltrail training.

What is recorded, and from where:

* hyperparameters from ``save_hyperparameters`` (flattened: ``{"opt": {"lr": 1}}`` -> ``opt.lr``);
* every metric Lightning logs, at the step Lightning gives;
* the trainer's settings (``trainer.max_epochs``, ``trainer.precision``, ...), read from the Trainer itself;
* ``ModelCheckpoint``'s best and last checkpoint in ``context["checkpoint"]``; the best file is the artifact;
* the outcome: ``finalize("success")`` makes a new model version; an exception in the fit, a failed training.

Finding the Trainer: Lightning hands a logger the Trainer only in ``log_graph(module)`` (``module.trainer``).
Before that, or without it (``enable_autolog_hparams=False``), the logger looks among its callers' frames
(:func:`modeltrail._adapter.find_in_callers`). Without a Trainer the settings are simply not recorded.

Distributed runs: only global rank zero writes; ``name`` and ``version`` are equal on every rank without the
database (``_lightning_trainer.shared_run_id``). The logger pickles as its settings only (a Tracker as its URL).
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

from lightning.pytorch import Trainer  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers.logger import DummyExperiment, Logger, rank_zero_experiment  # noqa: E402
from lightning.pytorch.utilities.rank_zero import rank_zero_only  # noqa: E402

from modeltrail._config import resolve_uri  # noqa: E402
from modeltrail._values import check_model_name, flatten  # noqa: E402

from . import _lightning_trainer as lt  # noqa: E402
from ._lightning_trainer import ENV_RUN_IDS, path_safe, shared_run_id, strategy_name, trainer_settings  # noqa: E402

if TYPE_CHECKING:
    from modeltrail._records import PendingVersion, VersionRecord
    from modeltrail._tracker import Tracker
    from modeltrail._training import Training

__all__ = ["ENV_RUN_IDS", "ModeltrailLogger", "path_safe", "shared_run_id", "strategy_name", "trainer_settings"]


class ModeltrailLogger(Logger):
    """A Lightning logger that writes the fit into a modeltrail ledger.

    ``model`` names the model whose versions the fits become; ``tracker`` is the :class:`~modeltrail.Tracker`
    to write into, or ``uri`` the ledger URL (default: ``MODELTRAIL_URI``, then ``./modeltrail.db``).
    ``save_dir`` is where Lightning puts checkpoints (``save_dir/name/version/checkpoints``; default: the
    Trainer's ``default_root_dir``). One logger records one training: make a new logger for each fit.
    """

    def __init__(
        self,
        model: str,
        *,
        uri: str | None = None,
        tracker: Tracker | None = None,
        save_dir: str | os.PathLike[str] | None = None,
        version: str | None = None,
        model_type: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        log_checkpoint: bool = True,
    ) -> None:
        super().__init__()
        self._model = check_model_name(model)
        # The URL is resolved here so that spawned workers log to the same ledger.
        self._life = core.Lifecycle("lightning", tracker if tracker is not None else resolve_uri(uri))
        self._save_dir = os.fspath(save_dir) if save_dir is not None else None
        self._name = path_safe(model)
        self._version = path_safe(version) if version is not None else shared_run_id()
        self._options = {"model_type": model_type, "description": description, "tags": dict(tags) if tags else None}
        self._log_checkpoint = log_checkpoint
        self._fit = lt.FitState()  # lives in one process and one fit: never pickled

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_fit"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)  # the lifecycle comes back as its URL, with no training
        self._fit = lt.FitState()

    def __repr__(self) -> str:
        return f"ModeltrailLogger(model={self._model!r}, version={self._version!r})"

    # ------------------------------------------------------------ Lightning's view
    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    @property
    def save_dir(self) -> str | None:
        return self._save_dir

    @property
    def root_dir(self) -> str | None:
        return os.path.join(self._save_dir, self._name) if self._save_dir is not None else None

    @property
    def log_dir(self) -> str | None:
        return os.path.join(self._save_dir, self._name, self._version) if self._save_dir is not None else None

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
        training = self._ensure_training()
        if training is None:
            return
        if training.status != "running":
            ended = f"training {training.id} has ended; metrics logged after the fit ({', '.join(sorted(metrics))})"
            return self._warn_unrecorded("after-fit", f"{ended} are not recorded")
        for key, value in lt.new_points(metrics, step, self._fit.last_points):
            training.log_metric(key, value, step)

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
        """End the training: ``success`` makes the next model version, anything else marks it failed."""
        training = self._life.live
        if training is None:
            return
        trainer = self._trainer()
        self._record_trainer_settings()
        failed = status not in ("success", "finished")
        if not failed and lt.trainer_stage(trainer) not in (None, "fit"):
            # validate/test/predict in a training started before it (a hand-made log call, an enclosing
            # ``with``): the fit that follows or the ``with`` block ends it.
            return training.flush()
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

    # -------------------------------------------------------------- internals
    def _ensure_training(self) -> Training | None:
        if self._life.training is None and not self._life.disabled:
            trainer = self._trainer()
            module = lt.module_of(trainer)
            # The fit is the "train" stage; finishing the training ends it (failed with the fit's error).
            default_type = type(module).__name__[:64] if module is not None else None
            options = {**self._options, "model_type": self._options["model_type"] or default_type}
            self._life.open(self._model, allowed=lambda: self._in_fit(trainer), **options)
            self._record_trainer_settings()
        return self._life.training

    def _in_fit(self, trainer: Trainer | None) -> bool:
        """validate/test/predict on their own are not a training: no row that nothing would ever end."""
        stage = lt.trainer_stage(trainer)
        if stage not in (None, "fit"):
            self._warn_unrecorded("outside-fit", f"trainer.{stage}() outside a fit is not recorded")
        return stage in (None, "fit")

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

    def _warn_unrecorded(self, kind: str, what: str) -> None:
        """Once per logger and kind ("outside-fit", "after-fit"): say what is not recorded and how to keep it."""
        hint = "Wrap fit and test in `with tracker.training(...)` (or @autolog) to record them in one training."
        self._life.tell_once(kind, f"{self._model!r}: {what}. {hint}", stacklevel=6)
