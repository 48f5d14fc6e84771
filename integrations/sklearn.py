"""scikit-learn adapter: :class:`TrackedEstimator` records every ``fit`` of the estimator it wraps.

::

    from modeltrail.integrations.sklearn import TrackedEstimator

    clf = TrackedEstimator(RandomForestClassifier(n_estimators=200), model="churn-rf",
                           validation_data=(X_val, y_val))
    clf.fit(X, y)          # one training: params, dataset, metrics, artifact, version
    clf.predict(X_new)     # exactly what the fitted forest predicts

The wrapper is a scikit-learn meta-estimator: it clones the wrapped estimator into ``estimator_`` at
fit time, delegates prediction methods, fitted attributes and tags to it (``_sklearn_delegate``), and
carries only its constructor params (a URL string, or a Tracker that pickles as its URL) so it clones
and pickles like any estimator. A wrapped search (``TrackedEstimator(GridSearchCV(...), model=...)``)
records one training with the best params and the CV scores. Bookkeeping failures never break the fit.
"""

from __future__ import annotations

import contextvars
import copy
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from modeltrail._adapter import (
    Lifecycle,
    artifact_path,
    class_of,
    describe,
    find_in_callers,
    guarded,
    preprocessing_fitted,
    require,
    running,
    stage_block,
)

require("sklearn", "sklearn")

from sklearn.base import clone  # noqa: E402 - after the friendly check above
from sklearn.utils.metaestimators import available_if  # noqa: E402

from . import _sklearn_values as values  # noqa: E402
from ._sklearn_delegate import Delegating, estimator_has  # noqa: E402

if TYPE_CHECKING:
    from modeltrail._tracker import Tracker
    from modeltrail._training import Training

__all__ = [
    "TrackedEstimator",
    "default_model_name",
    "fit_in_progress",
    "is_preprocessing",
    "record_fit",
    "record_preprocessing",
]

#: True while a TrackedEstimator fit runs in this thread/task: fits nested inside it
#: (a TrackedEstimator inside a Pipeline or a search that is itself tracked) record nothing,
#: since the outer training already holds their params (nested, by name) and the final scores.
_IN_FIT: contextvars.ContextVar[bool] = contextvars.ContextVar("modeltrail_sklearn_fit", default=False)


class TrackedEstimator(Delegating):
    """Wrap any scikit-learn estimator; each ``fit`` becomes a modeltrail training.

    Parameters
    ----------
    estimator : estimator
        What is trained. It is cloned at fit time; the fitted clone is ``estimator_``.
    model : str, default=None
        The model's name in the ledger; the wrapped estimator's class name when None.
    uri : str, default=None
        Database URL; None means ``MODELTRAIL_URI`` or ``./modeltrail.db``, read at fit time.
    tracker : Tracker, default=None
        The :class:`~modeltrail.Tracker` to record into (then ``uri`` is not used); it clones and
        pickles as its URL.
    dataset_name : str, default=None
        Name of the training data's fingerprint; ``"<model>-train"`` when None.
    validation_data : tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), default=None
        Scored after fit with the same metrics as the training data, prefixed ``val_`` (weighted when
        the third item is given, as the training scores are by ``fit``'s ``sample_weight``).
    artifact_dir : str or path, default=None
        Where the fitted model is saved with joblib; ``./artifacts/<model>/`` when None.
    log_every_fit : bool, default=False
        Record every fit as its own training. By default a fit made by scikit-learn's
        cross-validation (a fold of ``cross_val_score`` or of a search over this
        estimator) is not recorded, a fit nested inside another TrackedEstimator's fit
        records nothing (the outer one covers it), and a fit inside a
        ``with tracker.training(...)`` block logs into that training.

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone of ``estimator``.
    training_id_ : int or None
        The training this fit was recorded in (None when nothing was recorded, or while
        the database is unreachable and the training waits in modeltrail's local spool).
    training_uuid_ : str or None
        That training's uuid, known even while it waits in the spool.
    version_ : int or None
        The model version the fit created (None when it logged into an enclosing training).
    """

    estimator_: Any
    training_id_: int | None
    training_uuid_: str | None
    version_: int | None

    def __init__(
        self,
        estimator: Any,
        *,
        model: str | None = None,
        uri: str | None = None,
        tracker: Tracker | None = None,
        dataset_name: str | None = None,
        validation_data: tuple[Any, ...] | None = None,
        artifact_dir: str | os.PathLike[str] | None = None,
        log_every_fit: bool = False,
    ) -> None:
        self.estimator = estimator
        self.model = model
        self.uri = uri
        self.tracker = tracker
        self.dataset_name = dataset_name
        self.validation_data = validation_data
        self.artifact_dir = artifact_dir
        self.log_every_fit = log_every_fit

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        """scikit-learn's repr, with ``validation_data`` by type and shape: never the arrays themselves."""
        if self.validation_data is None:
            return super().__repr__(N_CHAR_MAX)
        shown = copy.copy(self)
        data = self.validation_data
        parts = data if isinstance(data, (tuple, list)) else (data,)
        text = ", ".join(str(describe(part)) for part in parts)
        shown.validation_data = _Shown(f"({text})" if isinstance(data, (tuple, list)) else text)  # type: ignore[assignment]
        return Delegating.__repr__(shown, N_CHAR_MAX)

    # ------------------------------------------------------------- fitting
    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> TrackedEstimator:
        """Fit a clone of the wrapped estimator and record the training."""
        self._tracked_fit("fit", X, y, fit_params)
        return self

    @available_if(estimator_has("fit_transform"))
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """The wrapped estimator's ``fit_transform``, recorded like ``fit``."""
        return self._tracked_fit("fit_transform", X, y, fit_params)

    @available_if(estimator_has("fit_predict"))
    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """The wrapped estimator's ``fit_predict``, recorded like ``fit``."""
        return self._tracked_fit("fit_predict", X, y, fit_params)

    @available_if(estimator_has("partial_fit"))
    def partial_fit(self, X: Any, y: Any = None, **params: Any) -> TrackedEstimator:
        """Delegated to the wrapped estimator; incremental updates are not recorded."""
        if "estimator_" not in self.__dict__:
            self.estimator_ = clone(self.estimator)
            self.training_id_ = self.training_uuid_ = self.version_ = None  # incremental updates are not recorded
        self.estimator_.partial_fit(X, y, **self._route("partial_fit", params))
        return self

    # ------------------------------------------------------------- internals
    def _model_name(self) -> str:
        if self.model is not None:
            return str(self.model)
        inner = self.estimator
        while type(inner).__name__.endswith("SearchCV") and hasattr(inner, "estimator"):
            inner = inner.estimator  # a search is named after what it searches over
        return type(inner).__name__

    def _tracked_fit(self, method: str, X: Any, y: Any, fit_params: dict[str, Any]) -> Any:
        """Run ``estimator.<method>`` on a fresh clone inside a training; return its result."""
        if self.validation_data is not None and (
            not isinstance(self.validation_data, (tuple, list)) or len(self.validation_data) not in (2, 3)
        ):
            raise ValueError(
                "validation_data must be (X_val, y_val) or (X_val, y_val, sample_weight_val), "
                f"got {type(self.validation_data).__name__}"
            )
        estimator = clone(self.estimator)
        params = self._route(method, fit_params)
        result, run, version = self._record_around(
            estimator,
            lambda: getattr(estimator, method)(X, y, **params),
            X,
            y,
            sample_weight=values.sample_weight_of(estimator, fit_params),
        )
        # Fitted state is set only once fit succeeded: a failed fit leaves nothing that looks fitted.
        self.estimator_ = estimator
        self.training_id_ = run.id if run is not None else None
        self.training_uuid_ = run.uuid if run is not None else None
        self.version_ = version
        return result

    def _record_around(
        self, estimator: Any, fit: Callable[[], Any], X: Any, y: Any, *, sample_weight: Any = None
    ) -> tuple[Any, Training | None, int | None]:
        """Call ``fit`` (which fits ``estimator`` in place) inside a training: (result, training, version)."""
        life = Lifecycle("sklearn", self.tracker if self.tracker is not None else self.uri)
        if self.log_every_fit or not (_IN_FIT.get() or _inside_cv_fold()):
            with guarded("sklearn: log params"):
                joined = None if self.log_every_fit else life.join(values.estimator_params(estimator))
                if joined is not None:
                    self._attach_dataset(joined, X, y)
            if life.training is None:
                self._start(life, estimator, X, y)
        run, own = life.training, life.owned
        token = _IN_FIT.set(True)
        try:
            # An owned training is active during the fit (for autolog and nested fits) and ends with it.
            with running(run if own else None, "sklearn"):
                with stage_block(run if own else None, "train", "sklearn"):
                    started = time.perf_counter()
                    result = fit()
                    fit_time = time.perf_counter() - started
                if run is not None:
                    self._record(run, estimator, X, y, fit_time, sample_weight=sample_weight, stages=own)
        finally:
            _IN_FIT.reset(token)
        version = run.version if own and run is not None else None
        return result, run, version.number if version is not None else None

    def _start(self, life: Lifecycle, estimator: Any, X: Any, y: Any) -> None:
        """A new training for this fit; none when modeltrail cannot record (warned once)."""
        dataset = None
        with guarded("sklearn: dataset fingerprint"):
            dataset = values.fingerprint(X, y, self.dataset_name or f"{self._model_name()}-train")
        with guarded("sklearn: start training"):
            params = values.estimator_params(estimator)
            life.start(
                self._model_name(),
                train_stage=False,  # the fit is a "train" stage block, followed by an "evaluate" one
                model_type=values.model_type(estimator),
                model_class=estimator,
                params=params,
                dataset=dataset,
                seeds={k: v for k, v in params.items() if k.split("__")[-1] == "random_state" and values.is_seed(v)},
            )

    def _attach_dataset(self, run: Training, X: Any, y: Any) -> None:
        """Give an enclosing training the fingerprint of X, unless it already names a dataset."""
        if run.id is not None and run.tracker.get_training(run.id).dataset is None:
            dataset = values.fingerprint(X, y, self.dataset_name or f"{run.model_name}-train")
            if dataset is not None:
                run.set_dataset(dataset)

    def _record(
        self, run: Training, fitted: Any, X: Any, y: Any, fit_time: float, *, sample_weight: Any, stages: bool
    ) -> None:
        """Everything known after fit: the model's own training curves, metrics (in an "evaluate" stage of a
        training it owns; weighted as the fit was), search results, the saved model."""
        with guarded("sklearn: training curves"):
            for key, points in values.curves(fitted).items():
                for step, value in enumerate(points):
                    run.log_metric(key, value, step=step)
            counts = values.iterations(fitted)
            if counts:
                run.log_metrics(counts)
        with stage_block(run if stages else None, "evaluate", "sklearn"):
            with guarded("sklearn: metrics"):
                metrics: dict[str, float] = {"fit_time_s": fit_time}
                if values.reusable(X):
                    metrics.update(values.metrics(fitted, X, y, sample_weight))
                run.log_metrics(metrics)
            if self.validation_data is not None:
                with guarded("sklearn: validation metrics"):
                    X_val, y_val, *weights = self.validation_data
                    scores = values.metrics(fitted, X_val, y_val, weights[0] if weights else None)
                    run.log_metrics({f"val_{k}": v for k, v in scores.items()})
        if hasattr(fitted, "cv_results_"):
            with guarded("sklearn: search results"):
                values.log_search(run, fitted)
        with guarded("sklearn: artifact"):
            self._save_artifact(run, fitted)

    def _save_artifact(self, run: Training, fitted: Any) -> None:
        import joblib

        to_save = getattr(fitted, "best_estimator_", fitted)  # a search: the refit best estimator
        path = artifact_path(run, self.artifact_dir, f"training-{run.id if run.id is not None else run.uuid}.joblib")
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            joblib.dump(to_save, partial)
            os.replace(partial, path)
        finally:
            if partial.exists():
                partial.unlink()
        run.log_artifact(path)


# ------------------------------------------------------------------ autolog
def fit_in_progress() -> bool:
    """A tracked fit (TrackedEstimator or autolog) is running in this context, or a CV fold is."""
    return _IN_FIT.get() or _inside_cv_fold()


def default_model_name(estimator: Any) -> str:
    """What autolog names a plain estimator's model: its class, or for a search what it searches over."""
    return TrackedEstimator(estimator)._model_name()


def record_fit(
    estimator: Any,
    fit: Callable[[], Any],
    X: Any,
    y: Any,
    *,
    model: str,
    uri: str | None,
    tracker: Tracker | None = None,
    fit_params: Mapping[str, Any] | None = None,
) -> Any:
    """Record ``fit()`` — a fit of ``estimator`` in place, as autolog patches it — like a TrackedEstimator would
    (``fit_params``: the keyword arguments of that fit, for its ``sample_weight``)."""
    wrapper = TrackedEstimator(estimator, model=model, uri=uri, tracker=tracker)
    weights = values.sample_weight_of(estimator, fit_params or {})
    return wrapper._record_around(estimator, fit, X, y, sample_weight=weights)[0]


def is_preprocessing(estimator: Any) -> bool:
    """A data transformation (a scaler, an encoder, PCA, a Pipeline of those), not a model of its own."""
    return values.model_type(estimator) == "transformer"


def record_preprocessing(estimator: Any, fit: Callable[[], Any], X: Any) -> Any:
    """Run ``fit()`` — a transformer's fit, as autolog patches it — and hand it to the next model's training.

    Kept: the class, its params, the fit's time and the shape of X (see ``_adapter.preprocessing_fitted``).
    """
    started = time.perf_counter()
    token = _IN_FIT.set(True)  # what the transformer fits inside is part of it
    try:
        result = fit()
    finally:
        _IN_FIT.reset(token)
    took = time.perf_counter() - started
    with guarded("sklearn: recording the preprocessing"):
        params = values.estimator_params(estimator)
        params.pop("estimator_class", None)
        step: dict[str, Any] = {"framework": "sklearn", "class": class_of(estimator), "params": params}
        shape = getattr(X, "shape", None)
        if shape is not None and len(shape) >= 1:
            step["n_rows"] = int(shape[0])
            step["n_features"] = int(shape[1]) if len(shape) > 1 else 1
        step["fit_time_s"] = took
        preprocessing_fitted(step)
    return result


# ------------------------------------------------------------------ helpers
class _Shown:
    """A value that prints as the given text (the repr of validation data by type and shape)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


#: scikit-learn's per-fold workers (searches, cross_validate, cross_val_predict, curves): a fit
#: made by one of them trains a throwaway fold model, recorded only with ``log_every_fit=True``.
_CV_FOLD_FUNCTIONS = frozenset(
    {"_fit_and_score", "_fit_and_predict", "_incremental_fit_estimator", "_fit_and_score_over_thresholds"}
)


def _inside_cv_fold() -> bool:
    """Whether this fit is called by scikit-learn's cross-validation machinery (in any process)."""

    def fold(frame: Any) -> bool:
        module = str(frame.f_globals.get("__name__", ""))
        return frame.f_code.co_name in _CV_FOLD_FUNCTIONS and module.startswith("sklearn.model_selection")

    return bool(find_in_callers(fold))
