"""Keras 3: ``model.fit(..., callbacks=[ModeltrailCallback(model="sentiment-lstm")])`` records the fit.

What one fit records (one training, a new version when it finishes):

* params: the ``fit`` arguments, the model, its compiled loss and metrics, its optimizer (see ``_keras_config``);
* metrics: every number of ``on_epoch_end``'s logs (``val_*`` included) at step = epoch index, and ``lr``, the
  learning rate in effect when the epoch began (a schedule's value, or what ReduceLROnPlateau set);
* the dataset fingerprint of in-memory ``x``/``y`` (the training part after ``validation_split``);
* the model saved at ``on_train_end`` to ``<artifact_dir>/<model>-<training id>.keras`` as the artifact.

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
``tracker=`` is kept and used; otherwise a Tracker is built from ``uri`` at the first ``on_train_begin``. The
callback pickles and deep-copies as its settings only (a Tracker as its URL). The lifecycle (join or own, the
train stage, the watchdog) is :mod:`modeltrail._adapter`'s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from modeltrail._adapter import Lifecycle, artifact_path, guarded, infer_model_type, safe_name
from modeltrail._dataset import Dataset
from modeltrail._training import Training, active_training

from ._keras_config import (
    current_learning_rate,
    fit_arguments,
    fit_params,
    is_auto_name,
    keras,
    metric_params,
    model_params,
    name_of,
    numbers,
    optimizer_params,
)

if TYPE_CHECKING:
    from modeltrail._records import PendingVersion, VersionRecord
    from modeltrail._tracker import Tracker

_Callback: Any = keras.callbacks.Callback

FRAMEWORK = "keras"
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


class ModeltrailCallback(_Callback):
    """Record each ``fit`` as a modeltrail training of ``model`` (default: the Keras model's name).

    ``tracker`` is the :class:`~modeltrail.Tracker` to record into; or ``uri``, a database URL (a Tracker is
    accepted there too; default: ``MODELTRAIL_URI``, then ``./modeltrail.db``). After a fit, ``training_id``
    and ``version`` tell what was recorded.
    """

    def __init__(
        self,
        model: str | None = None,
        uri: str | Tracker | None = None,
        *,
        tracker: Tracker | None = None,
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
        self._life = Lifecycle(FRAMEWORK, tracker if tracker is not None else uri)
        self.artifact_dir = os.fspath(artifact_dir) if artifact_dir is not None else None
        self.save_model = save_model
        self.log_dataset = log_dataset
        self.dataset_name = dataset_name
        self.description = description
        self.tags = dict(tags) if tags else None
        self.extra_params = dict(params) if params else None
        self._reset()

    def _reset(self) -> None:
        self._in_fit = False
        self._fit_done = False
        self._scoped = 0
        self._lr: float | None = None
        #: The training the last fit logged into, and the version it became (None until it finished).
        self.training_id: int | None = None
        self.version: VersionRecord | PendingVersion | None = None

    def __repr__(self) -> str:
        return f"ModeltrailCallback(model={self.model_name!r}, training_id={self.training_id})"

    @property
    def uri(self) -> str | None:
        """The database URL this callback records into (None: ``MODELTRAIL_URI``, then ``./modeltrail.db``)."""
        return self._life.uri

    @uri.setter
    def uri(self, uri: str | None) -> None:
        self._life = Lifecycle(FRAMEWORK, uri)

    @property
    def tracker(self) -> Tracker:
        """The Tracker this callback records into: the one it was given, or one made from ``uri``."""
        return self._life.tracker

    # ------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _SETTINGS}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        keras.callbacks.Callback.__init__(self)
        for key in _SETTINGS:
            setattr(self, key, state.get(key))  # ``uri`` makes the lifecycle
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
        if exc is not None:
            self._end("failed", error=f"{exc_type.__name__ if exc_type else 'Error'}: {exc}")
        else:
            self._end_previous()

    # ---------------------------------------------------------------- hooks
    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._end_previous()  # the previous fit of this callback raised (no on_train_end), or ran in ``with cb:``
        self._in_fit, self._fit_done, self._lr = True, False, None
        self._life.reset()
        with guarded("keras: starting the training"):
            self._start()

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._lr = None
        if self._life.live is None:
            return
        with guarded("keras: reading the learning rate"):
            self._lr = current_learning_rate(self.model.optimizer)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        run = self._life.live
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
        run = self._life.live
        if run is None:
            return
        self._fit_done = True
        if self.save_model:
            with guarded("keras: saving the model"):
                path = str(artifact_path(run, self.artifact_dir, f"{safe_name(run.model_name)}-{run.id}.keras"))
                self.model.save(path)
                run.log_artifact(path)
        self._life.end_stage()  # a fit that raises never gets here: finishing the training fails the stage
        if not self._scoped:
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
    def _eval_target(self) -> Training | None:
        active = active_training()
        if active is not None and active.status == "running":
            return active
        return self._life.live if self._life.owned and self._fit_done else None

    def _start(self) -> None:
        model, life = self.model, self._life
        fit = fit_arguments(model)
        params = self._params(model, fit)
        # In @autolog or a user's ``with tracker.training(...)``, that block owns the lifecycle and the dataset.
        if life.join(params) is None:
            name = self.model_name or model.name
            life.start(
                name,
                model_type=model_type(model),  # the class name is the context's model_class
                model_class=model,
                description=self.description,
                params=params,
                dataset=self._dataset(fit, name) if self.log_dataset else None,
                tags=self.tags,
            )
            life.watch(self, INTERRUPTED)
        self.training_id = life.training.id if life.training is not None else None
        self.version = None

    def _end_previous(self) -> None:
        """End an owned training still open: finished if its fit returned, else failed as interrupted."""
        self._end("finished" if self._fit_done else "failed", error=None if self._fit_done else INTERRUPTED)

    def _end(self, status: str, *, error: str | None = None) -> None:
        if self._life.live is not None and self._life.owned:
            self.version = self._life.end(status, error=error)

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


def model_type(model: Any) -> str | None:
    """What the model is, where Keras tells unambiguously: every compiled loss names the same kind
    (``binary_crossentropy``: classifier, ``mse``: regressor), or, with no loss that says, every output layer
    is a softmax (classifier). A subclassed model with a custom loss says nothing: None."""
    loss = name_of(getattr(model, "loss", None))
    losses = list(loss.values()) if isinstance(loss, Mapping) else loss if isinstance(loss, list) else [loss]
    kinds = {infer_model_type(name) for name in losses if name is not None}
    if len(kinds) == 1 and None not in kinds:
        return kinds.pop()
    if kinds - {None}:
        return None  # losses of different kinds (or one that says nothing beside one that does)
    try:
        layers = [t._keras_history.operation for t in model.outputs]
    except (AttributeError, TypeError):  # a subclassed model has no symbolic outputs
        return None
    activations = {getattr(getattr(layer, "activation", None), "__name__", None) for layer in layers}
    return "classifier" if activations == {"softmax"} else None


__all__ = ["ModeltrailCallback", "is_auto_name", "model_type"]
