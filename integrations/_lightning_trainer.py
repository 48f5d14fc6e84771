"""What the Lightning logger reads from Lightning (Trainer settings, stage, checkpoints, hparams, tuners,
evaluation data), and the run id every rank of a distributed fit shares without the database.

The run id (:func:`run_id`) is drawn when a logger's ``version`` is first read, not when the logger is made, so
that a logger never fitted leaves nothing in ``os.environ``:

* a rank that Lightning's ``ddp`` launcher started (``LOCAL_RANK`` > 0) takes the id its parent published in
  :data:`ENV_RUN_IDS` for the logger made at the same position, if the parent read its version before the launch;
* under an external launcher (torchrun, SLURM) every rank derives it from the launcher's job id;
* during a launch (``MASTER_ADDR``/``MASTER_PORT`` set; the launcher sets them before starting the other ranks,
  which re-run the script) every rank derives it from the launching process's id, that address and port, and
  the logger's position;
* otherwise it is random, and published in :data:`ENV_RUN_IDS` (``<pid>:<id>,,<id>``, by position) in case a
  ``ddp`` launch follows; :func:`unpublish` removes it when that logger's fit (or test) ends.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
import uuid
from argparse import Namespace
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modeltrail._adapter import infer_model_type, safe_name
from modeltrail._dataset import Dataset, path_digest
from modeltrail._values import as_metric_value, check_metric_key

#: ``<pid>:<id>,<id>,...`` - the run ids published by the loggers of process ``pid``, by position (empty: none).
ENV_RUN_IDS = "MODELTRAIL_LIGHTNING_RUN_IDS"

_ids_lock = threading.Lock()
_made = 0  # loggers made in this process: the next one's position
_published: dict[int, str] = {}  # position -> run id, for the loggers of this process that published theirs


def next_position() -> tuple[int, int]:
    """(this process's id, the position of a new logger among those it made): what :func:`run_id` derives from."""
    global _made
    with _ids_lock:
        position = _made
        _made += 1
    return os.getpid(), position


def run_id(origin: tuple[int, int], *, publish: bool = True) -> str:
    """The run id of the logger made at ``origin`` (pid, position); equal on every rank of one distributed fit.

    A random one is published in :data:`ENV_RUN_IDS` (for ranks a ``ddp`` launch may start) unless ``publish``
    is False.
    """
    pid, position = origin
    env = os.environ
    if _launched_worker():
        owner, _, listed = env.get(ENV_RUN_IDS, "").partition(":")
        inherited = listed.split(",") if listed else []
        if owner == str(os.getppid()) and position < len(inherited) and inherited[position]:
            return inherited[position]
    job = _external_job_id()
    if job is not None:
        return hashlib.sha256(f"{job}:{position}".encode()).hexdigest()[:12]
    if env.get("MASTER_ADDR") and env.get("MASTER_PORT"):
        launcher = os.getppid() if _launched_worker() else pid
        seed = f"launch:{launcher}:{env['MASTER_ADDR']}:{env['MASTER_PORT']}:{position}"
        return hashlib.sha256(seed.encode()).hexdigest()[:12]
    drawn = uuid.uuid4().hex[:12]
    if publish and pid == os.getpid():  # a copy unpickled elsewhere has no children of its own to tell
        with _ids_lock:
            _published[position] = drawn
            _write_env()
    return drawn


def unpublish(origin: tuple[int, int]) -> None:
    """The logger's fit is over: its id leaves ``os.environ`` (the variable itself goes with the last one)."""
    pid, position = origin
    if pid != os.getpid():
        return
    with _ids_lock:
        if _published.pop(position, None) is not None:
            _write_env()


def _write_env() -> None:
    if not _published:
        os.environ.pop(ENV_RUN_IDS, None)
        return
    slots = [_published.get(i, "") for i in range(max(_published) + 1)]
    os.environ[ENV_RUN_IDS] = f"{os.getpid()}:{','.join(slots)}"


@dataclass
class FitState:
    """What a logger learns during one fit in one process: never pickled."""

    trainer: Any = None  # a weak reference to the Trainer, once known
    checkpoint: Any = None  # the ModelCheckpoint that saved last: read at the end of the fit
    settings_logged: bool = False
    last_points: dict[str, tuple[int, float]] = field(default_factory=dict)
    evaluated: dict[str, float] = field(default_factory=dict)  # validate/test after the fit: last value per key


def trainer_settings(trainer: Any) -> dict[str, Any]:
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


def _short_name(class_name: str, suffix: str) -> str:
    base = class_name[: -len(suffix)] if class_name.endswith(suffix) and class_name != suffix else class_name
    return base.lower()


def plain_hparams(value: Any) -> Any:
    """Namespaces (argparse, Lightning's AttributeDict) as plain dicts, recursively, for :func:`flatten`."""
    if isinstance(value, Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        return {str(k): plain_hparams(v) for k, v in value.items()}
    return value


def same_point(last: tuple[int, float] | None, step: int, value: float) -> bool:
    if last is None or last[0] != step:
        return False
    return last[1] == value or (math.isnan(last[1]) and math.isnan(value))


def trainer_stage(trainer: Any) -> str | None:
    if trainer is None or trainer.state.fn is None:
        return None
    return str(getattr(trainer.state.fn, "value", trainer.state.fn))


def module_of(trainer: Any) -> Any:
    try:
        return trainer.lightning_module if trainer is not None else None
    except Exception:  # no module attached yet
        return None


def attr_or_none(obj: Any, name: str) -> Any:
    try:
        return getattr(obj, name, None) if obj is not None else None
    except Exception:  # a property that refuses (LightningModule.trainer when detached)
        return None


def record_checkpoint(training: Any, callback: Any, *, log_file: bool) -> None:
    """The best and last checkpoint into the training's context, the best (else last) file as its artifact.

    Context, not params: a new checkpoint file every fit is not a hyperparameter change.
    """
    best, last, score = callback.best_model_path, callback.last_model_path, callback.best_model_score
    info: dict[str, Any] = {}
    if best:
        info["best_path"] = os.path.abspath(best)
    if last:
        info["last_path"] = os.path.abspath(last)
    if score is not None:
        info["best_score"] = float(score)
    if callback.monitor:
        info["monitor"] = callback.monitor
    for kind in ("best", "last"):  # by content too: a resumed fit finds its parent even if the file moved
        path = info.get(f"{kind}_path")
        if path and os.path.isfile(path):
            info[f"{kind}_sha256"] = path_digest(path)[0]
    training.add_context({"checkpoint": info})
    artifact = best or last
    if log_file and artifact and os.path.exists(artifact):
        training.log_artifact(artifact)


def trainer_in(frame: Any, *, logger: Any) -> Any:
    """The Trainer running ``logger`` that ``frame`` holds as ``trainer`` or ``self.trainer``, or None.

    Lightning calls every logger hook from a function that holds one.
    """
    from lightning.pytorch import Trainer

    local = frame.f_locals
    for candidate in (local.get("trainer"), attr_or_none(local.get("self"), "trainer")):
        if isinstance(candidate, Trainer) and any(lg is logger for lg in candidate.loggers):
            return candidate
    return None


def new_points(metrics: Mapping[str, Any], step: int | None, last: dict[str, tuple[int, float]]) -> list[Any]:
    """The (key, value) points to log; Lightning adds ``epoch`` to both the step and the epoch-end logs of one
    step, so a point equal to the last one of its key at the same step is left out."""
    points = [(check_metric_key(k), as_metric_value(v, k)) for k, v in metrics.items()]
    if step is None:
        return points
    fresh = [(key, value) for key, value in points if not same_point(last.get(key), step, value)]
    last.update((key, (step, value)) for key, value in fresh)
    return fresh


def path_safe(text: str) -> str:
    """``text`` as one directory name: letters, digits, ``.``, ``_`` and ``-`` only, never empty or dotted."""
    return safe_name(text, default="run", strip="._-", limit=100)


# ------------------------------------------------------------------ tuners
def tuner_in(trainer: Any) -> Any:
    """The ``Tuner``'s finder callback when this Trainer call is only the tuner's trial fit, else None.

    ``Tuner.lr_find`` / ``scale_batch_size`` run a whole ``trainer.fit`` (or ``validate``) whose finder callback
    ends it early (``_early_exit``); the user's own ``fit`` follows. Used directly as callbacks, the finders run
    inside the user's fit and do not end it.
    """
    from lightning.pytorch.callbacks import BatchSizeFinder, LearningRateFinder

    for callback in getattr(trainer, "callbacks", None) or ():
        if isinstance(callback, (LearningRateFinder, BatchSizeFinder)) and getattr(callback, "_early_exit", False):
            return callback
    return None


def tuner_params(trainer: Any) -> dict[str, Any]:
    """What the finders of this Trainer found, as ``tuner.*`` params: the suggested learning rate, the batch size."""
    from lightning.pytorch.callbacks import BatchSizeFinder, LearningRateFinder

    found: dict[str, Any] = {}
    for callback in getattr(trainer, "callbacks", None) or ():
        if isinstance(callback, LearningRateFinder) and callback.optimal_lr is not None:
            suggestion = callback.optimal_lr.suggestion()
            if suggestion is not None:
                found["tuner.lr"] = float(suggestion)
        elif isinstance(callback, BatchSizeFinder) and callback.optimal_batch_size is not None:
            found["tuner.batch_size"] = int(callback.optimal_batch_size)
    return found


# -------------------------------------------------------- what a module is
def model_type_of(module: Any) -> str | None:
    """The module's kind in the adapters' one vocabulary (:func:`modeltrail._adapter.infer_model_type`), told by
    the losses it holds (``self.loss = nn.MSELoss()``: regressor), else by its submodules' classes
    (``BertForSequenceClassification``, ``GPT2LMHeadModel``); None when nothing tells (``F.cross_entropy`` in a
    ``training_step`` is code, not a fact the logger can read)."""
    try:
        names = list(dict.fromkeys(type(m).__name__ for m in module.modules()))
    except Exception:  # not an nn.Module after all
        return None
    losses = [n for n in names if n.endswith("Loss")]
    return infer_model_type(*losses, *[n for n in names if n not in losses])


# ---------------------------------------------------------- evaluation
_DATALOADER_SUFFIX = re.compile(r"/dataloader_idx_(\d+)$")


def evaluation_loaders(trainer: Any, stage: str) -> list[Any]:
    """The DataLoaders ``trainer.validate()`` / ``trainer.test()`` just ran, in Lightning's order."""
    loop = trainer.test_loop if stage == "test" else trainer.validate_loop
    combined = getattr(loop, "_combined_loader", None)
    loaders = combined.flattened if combined is not None else []
    return list(loaders)


def split_by_dataloader(metrics: Mapping[str, float], count: int) -> list[dict[str, float]]:
    """One mapping per dataloader: ``test_loss/dataloader_idx_1`` goes to the second, as ``test_loss``."""
    parts: list[dict[str, float]] = [{} for _ in range(max(count, 1))]
    for key, value in metrics.items():
        match = _DATALOADER_SUFFIX.search(key)
        if match is None:
            for part in parts:
                part[key] = value
        elif int(match.group(1)) < len(parts):
            parts[int(match.group(1))][key[: match.start()]] = value
    return parts


def dataset_of(loader: Any, name: str) -> Dataset | str:
    """The loader's data as a fingerprinted :class:`Dataset` when its tensors are at hand (``TensorDataset``,
    or a dataset with ``data`` and ``targets`` arrays as torchvision's have), else just ``name``."""
    data = getattr(loader, "dataset", None)
    tensors = getattr(data, "tensors", None)
    try:
        if isinstance(tensors, tuple) and 1 <= len(tensors) <= 2:
            return Dataset.from_arrays(tensors[0], tensors[1] if len(tensors) == 2 else None, name=name)
        x, y = getattr(data, "data", None), getattr(data, "targets", None)
        if hasattr(x, "shape") and (y is None or hasattr(y, "__len__")):
            return Dataset.from_arrays(x, y, name=name)
    except Exception:  # data that cannot be fingerprinted is still named
        return name
    return name


# ---------------------------------------------------------- checkpoints
def checkpoint_origin(path: str, digest: str | None, trainings: Any) -> Any:
    """The training (newest first) whose fit wrote the checkpoint: by content (its recorded best/last sha256 or
    artifact), else by path (each fit writes under its own ``name/version/checkpoints``)."""
    found = [t for t in trainings if digest is not None and digest in _digests_of(t)]
    found = found or [t for t in trainings if path in _paths_of(t)]
    return max(found, key=lambda t: t.id) if found else None


def _digests_of(record: Any) -> set[str]:
    info = (record.context or {}).get("checkpoint") or {}
    return {d for d in (info.get("best_sha256"), info.get("last_sha256"), record.artifact_sha256) if d}


def _paths_of(record: Any) -> set[str]:
    info = (record.context or {}).get("checkpoint") or {}
    return {p for p in (info.get("best_path"), info.get("last_path")) if p}
