"""PyTorch Lightning: ``Trainer(logger=ModeltrailLogger("mnist-cnn"))`` records each fit as a modeltrail training.

What is recorded, and from where:

* hyperparameters from ``save_hyperparameters`` (flattened: ``{"opt": {"lr": 1}}`` -> ``opt.lr``);
* every metric Lightning logs, at the step Lightning gives;
* the trainer's settings (``trainer.max_epochs``, ``trainer.precision``, ...), read from the Trainer itself;
* the best and last checkpoint of ``ModelCheckpoint`` (the training's ``context["checkpoint"]``: paths, best
  score, monitored metric; the best file is the artifact);
* the outcome: ``finalize("success")`` finishes the training (a new model version), an exception in the fit
  marks it failed with the error and makes no version.

Finding the Trainer: a Lightning logger is never handed the Trainer. Lightning calls ``log_graph(module)`` on
every logger right after ``log_hyperparams`` at the start of each fit, and ``module.trainer`` is the Trainer, so
that public hook is the main route. When it is not called (``Trainer(enable_autolog_hparams=False)``), the logger
looks for the Trainer among its callers' frames: every logger hook is called from a Lightning function that holds
the Trainer as ``trainer`` or ``self.trainer``. Without a Trainer the settings are simply not recorded.

Distributed runs: only global rank zero writes. ``name`` and ``version`` are equal on every rank without a
database round-trip: the version is a random run id made in ``__init__`` and handed to the worker processes that
Lightning's ``ddp`` launcher starts (they re-run the script) through an environment variable; under torchrun or
SLURM it is derived from the launcher's job id. The logger pickles as its settings only.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import sys
import threading
import uuid
import warnings
import weakref
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._common import ModeltrailWarning, guard, guarded, require, warn_once

require("lightning.pytorch", "lightning")

from lightning.pytorch import LightningModule, Trainer  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers.logger import DummyExperiment, Logger, rank_zero_experiment  # noqa: E402
from lightning.pytorch.utilities.rank_zero import rank_zero_only  # noqa: E402

from modeltrail._config import resolve_uri  # noqa: E402
from modeltrail._training import active_training  # noqa: E402
from modeltrail._values import as_metric_value, check_metric_key, check_model_name, flatten  # noqa: E402  # noqa: E402

if TYPE_CHECKING:
    from modeltrail._records import VersionRecord
    from modeltrail._tracker import Tracker
    from modeltrail._training import Training

__all__ = ["ModeltrailLogger"]

#: ``<pid>:<id>,<id>,...`` - the run ids of the loggers made in process ``pid``, in order of creation.
ENV_RUN_IDS = "MODELTRAIL_LIGHTNING_RUN_IDS"

_ids_lock = threading.Lock()
_ids: list[str] = []  # run ids of the loggers made in this process, by creation order
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Attributes that live only in one process and one fit; never pickled.
_RUNTIME = ("_tracker", "_training", "_owned", "_disabled", "_trainer_ref", "_checkpoint", "_settings_logged",
            "_last_points", "_unrecorded_warned")  # fmt: skip


class ModeltrailLogger(Logger):
    """A Lightning logger that writes the fit into a modeltrail ledger.

    ``model`` names the model whose versions the fits become; ``uri`` is the ledger URL (default:
    ``MODELTRAIL_URI``, then ``./modeltrail.db``). ``save_dir`` is where Lightning puts checkpoints
    (``save_dir/name/version/checkpoints``; default: the Trainer's ``default_root_dir``).
    One logger records one training: make a new logger for each fit.
    """

    def __init__(
        self,
        model: str,
        *,
        uri: str | None = None,
        save_dir: str | os.PathLike[str] | None = None,
        version: str | None = None,
        model_type: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        log_checkpoint: bool = True,
    ) -> None:
        super().__init__()
        self._model = check_model_name(model)
        self._uri = resolve_uri(uri)  # resolved here so that spawned workers log to the same ledger
        self._save_dir = os.fspath(save_dir) if save_dir is not None else None
        self._name = path_safe(model)
        self._version = path_safe(version) if version is not None else shared_run_id()
        self._model_type = model_type
        self._description = description
        self._tags = dict(tags) if tags else None
        self._log_checkpoint = log_checkpoint
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        self._tracker: Tracker | None = None
        self._training: Training | None = None
        self._owned = False  # True when this logger started the training and so must end it
        self._disabled = False  # set when the ledger cannot be opened at all: stop trying in this process
        self._trainer_ref: weakref.ref[Trainer] | None = None
        self._checkpoint: ModelCheckpoint | None = None
        self._settings_logged = False
        self._last_points: dict[str, tuple[int, float]] = {}
        self._unrecorded_warned: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in _RUNTIME}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_runtime()

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

    # ----------------------------------------------------------- modeltrail's view
    @property
    def training(self) -> Training | None:
        """The training this logger writes into, once started (rank zero only)."""
        return self._training

    @property
    def model_version(self) -> VersionRecord | None:
        """The model version the finished fit became, if any."""
        return self._training.version if self._training is not None else None

    # ----------------------------------------------------------------- hooks
    @rank_zero_only
    @guard("ModeltrailLogger.log_hyperparams")
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        training = self._ensure_training()
        if training is None or training.status != "running":
            return
        training.log_params(flatten(_plain(params)))

    @rank_zero_only
    @guard("ModeltrailLogger.log_metrics")
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        training = self._ensure_training()
        if training is None:
            return
        if training.status != "running":
            self._warn_late(metrics)
            return
        points = [(check_metric_key(k), as_metric_value(v, k)) for k, v in metrics.items()]
        for key, value in points:
            if step is not None:
                # Lightning adds ``epoch`` to both the step and the epoch-end logs of one step: keep one point.
                if _same_point(self._last_points.get(key), step, value):
                    continue
                self._last_points[key] = (step, value)
            training.log_metric(key, value, step)

    @rank_zero_only
    @guard("ModeltrailLogger.log_graph")
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Lightning hands over the module at each fit's start; its Trainer holds the settings worth recording."""
        trainer = _attr(model, "trainer")
        if isinstance(trainer, Trainer):
            self._remember_trainer(trainer)
            self._record_trainer_settings()

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        # Read at the end of the fit: best and last paths change with every save until then.
        self._checkpoint = checkpoint_callback

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """End the training: ``success`` makes the next model version, anything else marks it failed."""
        exc = sys.exc_info()[1]  # Lightning calls finalize("failed") inside its ``except`` for the fit
        error = f"{type(exc).__name__}: {exc}" if exc is not None else None
        with guarded("ModeltrailLogger.finalize"):
            self._finalize(status, error)

    # -------------------------------------------------------------- internals
    def _ensure_training(self) -> Training | None:
        if self._training is not None or self._disabled:
            return self._training
        trainer = self._trainer()
        if trainer is None:
            trainer = self._find_trainer()
        try:
            active = active_training()
            if active is not None:
                self._training, self._owned = active, False
            elif _stage(trainer) not in (None, "fit"):
                # validate/test/predict on their own are not a training: no row that nothing would ever end
                self._warn_unrecorded("outside-fit", f"trainer.{_stage(trainer)}() outside a fit is not recorded")
                return None
            else:
                from modeltrail._tracker import Tracker

                if self._tracker is None:
                    self._tracker = Tracker(self._uri)
                module = _module_of(trainer)
                self._training = self._tracker.training(
                    self._model,
                    framework="lightning",
                    model_type=self._model_type or (type(module).__name__[:64] if module is not None else None),
                    description=self._description,
                    tags=self._tags,
                )
                self._owned = True
                # The fit is its "train" stage; finishing the training ends it (failed with the fit's error).
                self._training.begin_stage("train")
        except Exception as e:  # an unusable ledger must not stop the fit
            self._disabled = True
            warn_once("ModeltrailLogger: starting the training", e)
            return None
        self._record_trainer_settings()
        return self._training

    def _finalize(self, status: str, error: str | None) -> None:
        training = self._training
        if training is None or training.status != "running":
            return
        trainer = self._trainer()
        if trainer is None:
            trainer = self._find_trainer()
        self._record_trainer_settings()
        failed = status not in ("success", "finished")
        if not failed and _stage(trainer) not in (None, "fit"):
            # validate/test/predict in a training started before it (a hand-made log call, an enclosing
            # ``with``): the fit that follows or the ``with`` block ends it.
            training.flush()
            return
        with guarded("ModeltrailLogger: recording checkpoints"):
            self._record_checkpoints(trainer)
        if not self._owned:  # an enclosing ``with tracker.training(...)`` / @autolog ends it
            training.flush()
        elif failed:
            training.finish("failed", error=error or f"Lightning ended the fit with status {status!r}")
        else:
            training.finish("finished")

    def _trainer(self) -> Trainer | None:
        return self._trainer_ref() if self._trainer_ref is not None else None

    def _remember_trainer(self, trainer: Trainer) -> None:
        if self._trainer() is not trainer:
            self._trainer_ref = weakref.ref(trainer)

    def _find_trainer(self) -> Trainer | None:
        """The Trainer that called this logger, found as ``trainer`` or ``self.trainer`` in the calling frames."""
        frame = sys._getframe(1)
        for _ in range(24):
            if frame is None:
                return None
            local = frame.f_locals
            for candidate in (local.get("trainer"), _attr(local.get("self"), "trainer")):
                if isinstance(candidate, Trainer) and any(lg is self for lg in candidate.loggers):
                    self._remember_trainer(candidate)
                    return candidate
            frame = frame.f_back  # type: ignore[assignment]
        return None

    def _record_trainer_settings(self) -> None:
        trainer = self._trainer()
        if self._settings_logged or trainer is None or self._training is None or self._training.status != "running":
            return
        self._settings_logged = True
        with guarded("ModeltrailLogger: recording trainer settings"):
            self._log_new_params(trainer_settings(trainer))

    def _record_checkpoints(self, trainer: Trainer | None) -> None:
        callback = self._checkpoint
        if callback is None and trainer is not None and isinstance(trainer.checkpoint_callback, ModelCheckpoint):
            callback = trainer.checkpoint_callback
        if callback is None or self._training is None:
            return
        best, last = callback.best_model_path, callback.last_model_path
        score = callback.best_model_score
        info: dict[str, Any] = {}
        if best:
            info["best_path"] = os.path.abspath(best)
        if last:
            info["last_path"] = os.path.abspath(last)
        if score is not None:
            info["best_score"] = float(score)
        if callback.monitor:
            info["monitor"] = callback.monitor
        # Context, not params: a new checkpoint file every fit is not a hyperparameter change.
        self._training.add_context({"checkpoint": info})
        artifact = best or last
        if self._log_checkpoint and artifact and os.path.exists(artifact):
            self._training.log_artifact(artifact)

    def _log_new_params(self, params: Mapping[str, Any]) -> None:
        """Settings the logger finds itself never overwrite what is already recorded (a shared training)."""
        assert self._training is not None
        new = {k: v for k, v in params.items() if k not in self._training.params}
        if new:
            self._training.log_params(new)

    def _warn_late(self, metrics: Mapping[str, Any]) -> None:
        self._warn_unrecorded(
            "after-fit",
            f"training {self._training.id if self._training else '?'} has ended; metrics logged after the fit "
            f"({', '.join(sorted(metrics))}) are not recorded",
        )

    def _warn_unrecorded(self, kind: str, what: str) -> None:
        """Once per logger and kind ("outside-fit", "after-fit"): say what is not recorded and how to keep it."""
        if kind in self._unrecorded_warned:
            return
        self._unrecorded_warned.add(kind)
        warnings.warn(
            f"modeltrail: {self._model!r}: {what}. Wrap fit and test in `with tracker.training(...)` "
            "(or @autolog) to record them in one training.",
            ModeltrailWarning,
            stacklevel=5,
        )


# ---------------------------------------------------------------- helpers
def trainer_settings(trainer: Trainer) -> dict[str, Any]:
    """The Trainer options that change what a fit produces, as ``trainer.*`` params."""
    return {
        "trainer.max_epochs": trainer.max_epochs,
        "trainer.max_steps": trainer.max_steps,
        "trainer.precision": str(trainer.precision),
        "trainer.accelerator": _short_name(type(trainer.accelerator).__name__, "Accelerator"),
        "trainer.strategy": strategy_name(trainer.strategy),
        "trainer.devices": trainer.num_devices,
        "trainer.num_nodes": trainer.num_nodes,
        "trainer.world_size": trainer.world_size,
        "trainer.accumulate_grad_batches": trainer.accumulate_grad_batches,
        "trainer.gradient_clip_val": trainer.gradient_clip_val,
        "trainer.gradient_clip_algorithm": getattr(trainer, "gradient_clip_algorithm", None),
    }


def strategy_name(strategy: Any) -> str:
    """The name a user passes as ``Trainer(strategy=...)``: ``ddp``, ``ddp_spawn``, ``fsdp``, ``single_device``."""
    name = getattr(type(strategy), "strategy_name", None)
    if isinstance(name, str):
        return name
    name = _short_name(type(strategy).__name__, "Strategy")
    start_method = getattr(strategy, "_start_method", None)
    if name == "ddp" and isinstance(start_method, str) and start_method != "popen":
        name = f"ddp_{start_method}"
    return name


def path_safe(text: str) -> str:
    """``text`` as one directory name: letters, digits, ``.``, ``_`` and ``-`` only, never empty or dotted."""
    safe = _UNSAFE.sub("_", str(text)).strip("._-")[:100]
    return safe or "run"


def shared_run_id() -> str:
    """A run id that every rank of one distributed fit computes alike, without talking to the database.

    The process that makes the logger first draws a random id and publishes the ids it drew in
    :data:`ENV_RUN_IDS` (with its pid). Lightning's ``ddp`` launcher starts the other ranks as children with a
    copy of that environment; they re-run the script, and their n-th logger takes the n-th id. Under an
    external launcher (torchrun, SLURM) every rank derives the id from the launcher's job id instead.
    """
    with _ids_lock:
        index = len(_ids)
        owner, _, listed = os.environ.get(ENV_RUN_IDS, "").partition(":")
        inherited = listed.split(",") if listed else []
        if owner == str(os.getppid()) and _launched_worker() and index < len(inherited):
            run_id = inherited[index]
        else:
            job = _external_job_id()
            if job is not None:
                run_id = hashlib.sha256(f"{job}:{index}".encode()).hexdigest()[:12]
            else:
                run_id = uuid.uuid4().hex[:12]
        _ids.append(run_id)
        os.environ[ENV_RUN_IDS] = f"{os.getpid()}:{','.join(_ids)}"
        return run_id


def _launched_worker() -> bool:
    """True in a rank that Lightning's launcher started: it sets LOCAL_RANK > 0 before starting it."""
    try:
        return int(os.environ.get("LOCAL_RANK", "0")) > 0
    except ValueError:
        return False


def _external_job_id() -> str | None:
    env = os.environ
    run = env.get("TORCHELASTIC_RUN_ID")
    if run is not None:  # torchrun: same on every rank of one job ("none" without a rendezvous id)
        return f"torchrun:{run}:{env.get('MASTER_ADDR', '')}:{env.get('MASTER_PORT', '')}"
    if env.get("SLURM_JOB_ID") and int(env.get("SLURM_NTASKS", "1") or 1) > 1:
        return f"slurm:{env['SLURM_JOB_ID']}:{env.get('SLURM_STEP_ID', '')}"
    return None


def _plain(value: Any) -> Any:
    """Namespaces (argparse, Lightning's AttributeDict) as plain dicts, recursively, for :func:`flatten`."""
    if isinstance(value, Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _same_point(last: tuple[int, float] | None, step: int, value: float) -> bool:
    if last is None or last[0] != step:
        return False
    return last[1] == value or (math.isnan(last[1]) and math.isnan(value))


def _short_name(class_name: str, suffix: str) -> str:
    base = class_name[: -len(suffix)] if class_name.endswith(suffix) and class_name != suffix else class_name
    return base.lower()


def _stage(trainer: Trainer | None) -> str | None:
    if trainer is None or trainer.state.fn is None:
        return None
    return str(getattr(trainer.state.fn, "value", trainer.state.fn))


def _module_of(trainer: Trainer | None) -> LightningModule | None:
    if trainer is None:
        return None
    try:
        return trainer.lightning_module
    except Exception:  # no module attached yet
        return None


def _attr(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    try:
        return getattr(obj, name, None)
    except Exception:  # a property that refuses (LightningModule.trainer when detached)
        return None
