"""Keras 3: ``model.fit(..., callbacks=[ModeltrailCallback(model="sentiment-lstm")])`` records the fit.

What one fit records (one training, a new version when it finishes):

* params: ``epochs`` and ``steps`` (batches per epoch) from ``self.params``; the other ``fit`` arguments
  (``batch_size`` — the effective one when Keras picked it —, ``validation_split``, ``shuffle``,
  ``initial_epoch``, ``steps_per_epoch``, ``validation_steps``, ``validation_batch_size``, ``validation_freq``,
  and whether ``class_weight`` / ``sample_weight`` / validation were used) read from the ``fit`` frame that
  calls ``on_train_begin``; ``optimizer.*`` (``optimizer.get_config()`` flattened, a learning-rate schedule as
  ``optimizer.learning_rate.class_name`` plus its config; not the per-process ``name``);
  ``num_params`` (``.trainable``, ``.non_trainable``); ``model.class``, ``model.name`` (unless Keras made it up,
  as ``sequential_3``), ``loss``, ``metrics`` (compiled names), ``callbacks`` (the other callbacks), ``keras.backend``;
* metrics: every number of ``on_epoch_end``'s logs (``val_*`` included) at step = epoch index, and ``lr``, the
  learning rate in effect when the epoch began (a schedule's value, or what ReduceLROnPlateau set);
* the dataset fingerprint of in-memory ``x``/``y`` (the training part after ``validation_split``);
* the model saved at ``on_train_end`` to ``<artifact_dir>/<model>-<training id>.keras`` as the artifact.

What cannot be observed: ``self.params`` carries only ``epochs``, ``steps`` and ``verbose``; everything else
comes from the ``fit`` frame, so a custom loop that drives a ``CallbackList`` itself records only those two.
Generators, ``PyDataset`` and ``DataLoader`` inputs are not fingerprinted, and ``validation_data`` given
next to ``validation_split`` cannot be told apart from a split (``validation`` says only that fit validated).

Validation inside ``fit``: Keras runs ``evaluate`` with the same callbacks, so ``on_test_*`` fire during fit;
they are ignored there (``val_*`` come once per epoch from ``on_epoch_end``). A standalone
``model.evaluate(..., callbacks=[cb])`` is recorded as ``eval_*`` metrics only while a training is still open
(inside ``with cb:`` after its fit, or into an active ``tracker.training`` / ``@autolog`` training); otherwise it
is ignored, because the fit's training has already become a version.

Failures: Keras calls no hook when ``fit`` raises (its torch trainer has no try/finally), so:

* ``with ModeltrailCallback(...) as cb: model.fit(..., callbacks=[cb])`` records the exact exception and keeps
  the training open until the block ends (a later ``evaluate`` in the block lands in it as ``eval_*``);
* without the block, a training whose fit never reached ``on_train_end`` is recorded failed at the callback's next
  ``on_train_begin``, when the callback is garbage-collected, or at interpreter exit (naming the uncaught
  exception that ended the process) — never as a version;
* inside an active training (``with tracker.training(...)``, ``@autolog``) the fit logs into it and that block
  records success or failure.

Nothing is patched. modeltrail's own failures (unreachable database, ...) warn once per hook and the fit goes on.
The callback pickles and deep-copies as its settings only; the Tracker is built at the first ``on_train_begin``.
"""

from __future__ import annotations

import atexit
import math
import os
import re
import sys
import threading
import weakref
from collections.abc import Mapping
from types import FrameType, TracebackType
from typing import Any

from modeltrail._dataset import Dataset
from modeltrail._records import VersionRecord
from modeltrail._tracker import Tracker
from modeltrail._training import Stage, Training, active_training
from modeltrail._values import flatten

from ._common import guarded, require


def _import_keras() -> Any:
    try:
        return require("keras", "keras")
    except ModuleNotFoundError as e:
        cause = e.__cause__
        if isinstance(cause, ModuleNotFoundError) and cause.name and cause.name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(
                "keras is installed but its backend is TensorFlow, which is not; set KERAS_BACKEND=torch "
                "(or jax) in the environment before keras is first imported"
            ) from e
        raise


keras: Any = _import_keras()
np: Any = require("numpy", "keras")
_Callback: Any = keras.callbacks.Callback

FRAMEWORK = "keras"
#: ``fit`` arguments read from its frame, recorded under their own names.
FIT_ARGS = (
    "batch_size",
    "validation_split",
    "shuffle",
    "initial_epoch",
    "steps_per_epoch",
    "validation_steps",
    "validation_batch_size",
    "validation_freq",
)
INTERRUPTED = "Keras fit stopped before on_train_end (it raised or was interrupted)"
_SETTINGS = (
    "model_name",
    "uri",
    "artifact_dir",
    "save_model",
    "log_dataset",
    "dataset_name",
    "description",
    "tags",
    "extra_params",
)
_FIT_FRAME_DEPTH = 12


class ModeltrailCallback(_Callback):
    """Record each ``fit`` as a modeltrail training of ``model`` (default: the Keras model's name).

    ``uri`` is a database URL or a :class:`~modeltrail.Tracker` (default: ``MODELTRAIL_URI``, then
    ``./modeltrail.db``). After a fit, ``training_id`` and ``version`` tell what was recorded.
    """

    def __init__(
        self,
        model: str | None = None,
        uri: str | Tracker | None = None,
        *,
        artifact_dir: str | os.PathLike[str] | None = None,
        save_model: bool = True,
        log_dataset: bool = True,
        dataset_name: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model_name = model
        self.uri = uri.uri if isinstance(uri, Tracker) else uri
        self.artifact_dir = os.fspath(artifact_dir) if artifact_dir is not None else None
        self.save_model = save_model
        self.log_dataset = log_dataset
        self.dataset_name = dataset_name
        self.description = description
        self.tags = dict(tags) if tags else None
        self.extra_params = dict(params) if params else None
        self._reset()

    def _reset(self) -> None:
        self._tracker: Tracker | None = None
        self._run: Training | None = None
        self._stage: Stage | None = None  # the "train" stage of a training this callback owns
        self._owned = False
        self._in_fit = False
        self._fit_done = False
        self._scoped = 0
        self._lr: float | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        #: The training the last fit logged into, and the version it became (None until it finished).
        self.training_id: int | None = None
        self.version: VersionRecord | None = None

    def __repr__(self) -> str:
        return f"ModeltrailCallback(model={self.model_name!r}, training_id={self.training_id})"

    # ------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _SETTINGS}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        keras.callbacks.Callback.__init__(self)
        for key in _SETTINGS:
            setattr(self, key, state.get(key))
        self._reset()

    # ------------------------------------------------------ context manager
    def __enter__(self) -> ModeltrailCallback:
        self._scoped += 1
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._scoped = max(0, self._scoped - 1)
        if self._scoped:
            return
        self._in_fit = False
        if self._live() is None or not self._owned:
            return
        if exc is not None:
            self._end("failed", error=f"{exc_type.__name__ if exc_type else 'Error'}: {exc}")
        elif self._fit_done:
            self._end("finished")
        else:
            self._end("failed", error=INTERRUPTED)

    # ---------------------------------------------------------------- hooks
    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._live() is not None and self._owned:
            # The previous fit of this callback raised (no on_train_end), or ran inside ``with cb:``.
            self._end("finished" if self._fit_done else "failed", error=None if self._fit_done else INTERRUPTED)
        self._in_fit = True
        self._fit_done = False
        self._lr = None
        self._run = None
        self._stage = None
        with guarded("keras: starting the training"):
            self._start()
        run = self._live()
        if self._owned and run is not None:
            with guarded("keras: starting the train stage"):
                self._stage = run.begin_stage("train")

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._lr = None
        if self._live() is None:
            return
        with guarded("keras: reading the learning rate"):
            self._lr = current_learning_rate(self.model.optimizer)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        run = self._live()
        if run is None:
            return
        with guarded("keras: logging epoch metrics"):
            metrics = numbers(logs)
            if self._lr is not None and "lr" not in metrics:
                metrics["lr"] = self._lr
            for key, value in metrics.items():
                run.log_metric(key, value, step=epoch)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._in_fit = False
        run = self._live()
        if run is None:
            return
        self._fit_done = True
        if self.save_model:
            with guarded("keras: saving the model"):
                path = self._artifact_path(run)
                self.model.save(path)
                run.log_artifact(path)
        if self._stage is not None:
            with guarded("keras: ending the train stage"):
                self._stage.end()  # a fit that raises never gets here: finishing the training fails the stage
        if self._owned and not self._scoped:
            self._end("finished")

    def on_test_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._in_fit:
            return  # fit's own validation pass: its results arrive as val_* in on_epoch_end
        run = self._eval_target()
        if run is None:
            return
        with guarded("keras: logging evaluate metrics"):
            for key, value in numbers(logs).items():
                run.log_metric(f"eval_{key}", value)

    # ------------------------------------------------------------- internals
    def _live(self) -> Training | None:
        run = self._run
        return run if run is not None and run.status == "running" else None

    def _eval_target(self) -> Training | None:
        active = active_training()
        if active is not None and active.status == "running":
            return active
        run = self._live()
        return run if run is not None and self._owned and self._fit_done else None

    def _tracker_for(self) -> Tracker:
        if self._tracker is None:
            self._tracker = Tracker(self.uri)
        return self._tracker

    def _start(self) -> None:
        model = self.model
        fit = fit_arguments(model)
        params = self._params(model, fit)
        active = active_training()
        if active is not None and active.status == "running":
            # @autolog or a user's ``with tracker.training(...)``: that block owns the lifecycle and the dataset.
            self._run, self._owned = active, False
            new = {k: v for k, v in params.items() if k not in active.params}
            if new:
                active.log_params(new)
        else:
            name = self.model_name or model.name
            dataset = self._dataset(fit, name) if self.log_dataset else None
            self._run = self._tracker_for().training(
                name,
                framework=FRAMEWORK,
                model_type=type(model).__name__,
                description=self.description,
                params=params,
                dataset=dataset,
                tags=self.tags,
            )
            self._owned = True
            self._finalizer = _watch(self, self._run)
        self.training_id = self._run.id
        self.version = None

    def _end(self, status: str, *, error: str | None = None) -> None:
        run = self._run
        if run is None:
            return
        _unwatch(self._finalizer, run)
        self._finalizer = None
        with guarded("keras: finishing the training"):
            self.version = run.finish(status, error=error)

    def _params(self, model: Any, fit: Mapping[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        with guarded("keras: reading fit arguments"):
            params.update(fit_params(self.params, fit, self))
        with guarded("keras: reading the model"):
            params.update(model_params(model))
        with guarded("keras: reading the compiled metrics"):
            params.update(metric_params(model))
        with guarded("keras: reading the optimizer"):
            params.update(optimizer_params(model.optimizer))
        params.update(self.extra_params or {})
        return params

    def _dataset(self, fit: Mapping[str, Any], name: str) -> Dataset | None:
        with guarded("keras: fingerprinting the dataset"):
            x, y = fit.get("x"), fit.get("y")
            if hasattr(x, "shape") and (y is None or hasattr(y, "shape")):
                return Dataset.from_arrays(x, y, name=self.dataset_name or f"{name}-train")
        return None

    def _artifact_path(self, run: Training) -> str:
        safe = safe_name(run.model_name)
        folder = self.artifact_dir if self.artifact_dir is not None else os.path.join("artifacts", safe)
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f"{safe}-{run.id}.keras")


# ------------------------------------------------------------ what Keras shows
def fit_arguments(model: Any) -> dict[str, Any]:
    """The locals of the ``fit`` call of ``model`` that is running the callbacks, or ``{}`` outside one."""
    frame: FrameType | None = sys._getframe(1)
    try:
        for _ in range(_FIT_FRAME_DEPTH):
            if frame is None:
                break
            if frame.f_code.co_name == "fit" and frame.f_locals.get("self") is model:
                return dict(frame.f_locals)
            frame = frame.f_back
        return {}
    finally:
        del frame


def fit_params(params: Mapping[str, Any] | None, fit: Mapping[str, Any], own: Any = None) -> dict[str, Any]:
    """The fit settings: Keras's ``params`` (``epochs``, ``steps``) plus the arguments found in the fit frame."""
    out: dict[str, Any] = {}
    params = params or {}
    for key in ("epochs", "steps"):
        if params.get(key) is not None:
            out[key] = params[key]
    if not fit:
        return out
    for key in FIT_ARGS:
        if key in fit:
            out[key] = fit[key]
    if fit.get("batch_size") is None:
        adapter = getattr(fit.get("epoch_iterator"), "data_adapter", None)
        out["batch_size"] = getattr(adapter, "batch_size", None)
    out["class_weight"] = fit.get("class_weight") is not None
    out["sample_weight"] = fit.get("sample_weight") is not None
    out["validation"] = fit.get("validation_data") is not None
    others = getattr(fit.get("callbacks"), "callbacks", None)
    if others is not None:
        skip = (keras.callbacks.History, keras.callbacks.ProgbarLogger)
        out["callbacks"] = [type(c).__name__ for c in others if c is not own and not isinstance(c, skip)]
    return out


def model_params(model: Any) -> dict[str, Any]:
    trainable = sum(math.prod(int(n) for n in w.shape) for w in model.trainable_weights)
    frozen = sum(math.prod(int(n) for n in w.shape) for w in model.non_trainable_weights)
    out = {
        "model.class": type(model).__name__,
        "num_params": trainable + frozen,
        "num_params.trainable": trainable,
        "num_params.non_trainable": frozen,
        "keras.backend": keras.backend.backend(),
        "loss": name_of(getattr(model, "loss", None)),
    }
    if not is_auto_name(model.name, type(model)):
        out["model.name"] = model.name
    return out


def metric_params(model: Any) -> dict[str, Any]:
    """The compiled metrics by name, from ``get_compile_config()`` (what ``compile(metrics=...)`` was given)."""
    compiled = model.get_compile_config() if getattr(model, "compiled", False) else None
    if not isinstance(compiled, Mapping):
        return {}
    groups = [name_of_serialized(compiled.get(k)) for k in ("metrics", "weighted_metrics")]
    return {"metrics": [n for group in groups if group for n in (group if isinstance(group, list) else [group])]}


def optimizer_params(optimizer: Any) -> dict[str, Any]:
    """``optimizer.get_config()`` as ``optimizer.*`` params; a schedule as its class name plus its config."""
    if optimizer is None:
        return {}
    config = plain(optimizer.get_config())
    config.pop("name", None)  # a variable scope, uniquified per process (adam, adam_1...): noise in param diffs
    return {"optimizer.class": type(optimizer).__name__, **flatten(config, prefix="optimizer")}


def current_learning_rate(optimizer: Any) -> float | None:
    if optimizer is None:
        return None
    value = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    return tidy_float(value)


def numbers(logs: Mapping[str, Any] | None) -> dict[str, float]:
    """The scalar numbers of a Keras logs dict (anything else, such as arrays, is left out)."""
    out: dict[str, float] = {}
    for key, value in (logs or {}).items():
        if isinstance(value, bool) or not isinstance(key, str):
            continue
        if isinstance(value, (int, float)):
            out[key] = float(value)
        elif getattr(value, "shape", None) == () and hasattr(value, "item"):
            out[key] = float(value.item())
    return out


# --------------------------------------------------------------- value tidying
def tidy_float(value: float) -> float:
    """A float32 value as its shortest decimal: 0.001, not 0.0010000000474974513 (Keras stores float32)."""
    if not math.isfinite(value) or abs(value) > 3.0e38:
        return value
    single = np.float32(value)
    return float(str(single)) if float(single) == value else value


def plain(value: Any) -> Any:
    """A Keras-serialized config made readable: ``{"class_name": C, "config": {...}}`` becomes ``{class_name, ...}``."""
    if isinstance(value, Mapping):
        if "class_name" in value and "config" in value:
            inner = value["config"]
            out: dict[str, Any] = {"class_name": value["class_name"]}
            if isinstance(inner, Mapping):
                out.update({str(k): plain(v) for k, v in inner.items()})
            else:
                out["config"] = plain(inner)
            return out
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float):
        return tidy_float(value)
    return value


def name_of(obj: Any) -> Any:
    """A loss or metric by name: strings as given, objects by ``name``, functions by ``__name__``."""
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): name_of(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [name_of(v) for v in obj]
    return getattr(obj, "name", None) or getattr(obj, "__name__", None) or type(obj).__name__


def name_of_serialized(obj: Any) -> Any:
    """Names out of ``get_compile_config()`` entries, which are strings or serialized objects."""
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Mapping):
        if "class_name" in obj:
            config = obj.get("config")
            if isinstance(config, Mapping) and config.get("name"):
                return str(config["name"])
            return str(config) if isinstance(config, str) else str(obj["class_name"])
        return {str(k): name_of_serialized(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [name_of_serialized(v) for v in obj]
    return name_of(obj)


def is_auto_name(name: str, cls: type) -> bool:
    """Whether ``name`` is what Keras made up for an unnamed ``cls`` (``sequential``, ``sequential_3``)."""
    snake = re.sub(r"([a-z])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", cls.__name__)).lower()
    return re.fullmatch(rf"{re.escape(snake)}(_\d+)?", name) is not None


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


# -------------------------------------------- trainings whose fit never ended
_open: dict[int, Training] = {}
_open_lock = threading.Lock()
_exit_hook = False


def _watch(callback: ModeltrailCallback, run: Training) -> weakref.finalize[Any, Any]:
    """Make sure ``run`` ends failed if its fit never reaches on_train_end: on collection or at exit."""
    global _exit_hook
    finalizer = weakref.finalize(callback, _discarded, run)
    finalizer.atexit = False  # exit is handled by _at_exit, which can name the exception
    with _open_lock:
        _open[id(run)] = run
        if not _exit_hook:
            atexit.register(_at_exit)  # after the Tracker's writer registered: runs before it closes
            _exit_hook = True
    return finalizer


def _unwatch(finalizer: weakref.finalize[Any, Any] | None, run: Training) -> None:
    if finalizer is not None:
        finalizer.detach()
    with _open_lock:
        _open.pop(id(run), None)


def _fail(run: Training, error: str) -> None:
    with guarded("keras: recording an interrupted fit"):
        if run.status == "running":
            run.finish("failed", error=error)


def _discarded(run: Training) -> None:
    with _open_lock:
        if _open.pop(id(run), None) is None:
            return
    # A finalizer may run inside any allocation of any thread; do the database work on a thread of its own.
    # It is not a daemon, so interpreter exit waits for it.
    threading.Thread(
        target=_fail, args=(run, f"{INTERRUPTED}; the callback was discarded"), name="modeltrail-keras"
    ).start()


def _at_exit() -> None:
    with _open_lock:
        runs = list(_open.values())
        _open.clear()
    last = getattr(sys, "last_value", None)
    why = f"; the process exited after {type(last).__name__}: {last}" if last is not None else "; the process exited"
    for run in runs:
        _fail(run, INTERRUPTED + why)


__all__ = ["ModeltrailCallback"]
