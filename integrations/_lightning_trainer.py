"""What the Lightning logger reads from Lightning (Trainer settings, stage, checkpoints, hparams), and the run id
every rank of a distributed fit shares without the database.

The run id: the process that makes a logger first draws a random id and publishes the ids it drew in
:data:`ENV_RUN_IDS` (with its pid). Lightning's ``ddp`` launcher starts the other ranks as children with a copy
of that environment; they re-run the script, and their n-th logger takes the n-th id. Under an external
launcher (torchrun, SLURM) every rank derives the id from the launcher's job id instead.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import uuid
from argparse import Namespace
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modeltrail._adapter import safe_name
from modeltrail._values import as_metric_value, check_metric_key

#: ``<pid>:<id>,<id>,...`` - the run ids of the loggers made in process ``pid``, in order of creation.
ENV_RUN_IDS = "MODELTRAIL_LIGHTNING_RUN_IDS"

_ids_lock = threading.Lock()
_ids: list[str] = []  # run ids of the loggers made in this process, by creation order


@dataclass
class FitState:
    """What a logger learns during one fit in one process: never pickled."""

    trainer: Any = None  # a weak reference to the Trainer, once known
    checkpoint: Any = None  # the ModelCheckpoint that saved last: read at the end of the fit
    settings_logged: bool = False
    last_points: dict[str, tuple[int, float]] = field(default_factory=dict)


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


def shared_run_id() -> str:
    """A run id that every rank of one distributed fit computes alike, without talking to the database."""
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


def record_checkpoint(training: Any, callback: Any, *, log_file: bool, module: Any = None) -> None:
    """The best and last checkpoint into the training's context, the best (else last) file as its artifact.

    The file is the training's ``model``, with ``module``'s class recorded so ``load_model`` can rebuild it.

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
    training.add_context({"checkpoint": info})
    artifact = best or last
    if log_file and artifact and os.path.exists(artifact):
        cls = type(module) if module is not None else None
        loader = {"class": f"{cls.__module__}.{cls.__qualname__}"} if cls is not None else None
        training.log_artifact(artifact, name="model", flavor="lightning" if loader else None, info=loader)


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
