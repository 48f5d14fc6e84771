"""scikit-learn adapter: :class:`TrackedEstimator` records every ``fit`` of the estimator it wraps.

::

    from modeltrail.integrations.sklearn import TrackedEstimator

    clf = TrackedEstimator(RandomForestClassifier(n_estimators=200), model="churn-rf",
                           validation_data=(X_val, y_val))
    clf.fit(X, y)          # one training: params, dataset, metrics, artifact, version
    clf.predict(X_new)     # exactly what the fitted forest predicts

The wrapper is a scikit-learn meta-estimator: it clones the wrapped estimator into
``estimator_`` at fit time, delegates prediction methods, fitted attributes and tags
to it, and carries only its constructor params (the database URL is a string) so it
clones and pickles like any estimator. For a hyperparameter search, wrap the search:
``TrackedEstimator(GridSearchCV(...), model=...)`` records one training with the best
params and the CV scores. Bookkeeping failures warn once and never break the fit.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ._common import guarded, require

require("sklearn", "sklearn")

from sklearn.base import BaseEstimator, clone  # noqa: E402 - after the friendly check above
from sklearn.utils import get_tags  # noqa: E402
from sklearn.utils.metadata_routing import (  # noqa: E402
    MetadataRouter,
    MethodMapping,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.metaestimators import available_if  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402

if TYPE_CHECKING:
    from modeltrail._dataset import Dataset
    from modeltrail._training import Training

log = logging.getLogger("modeltrail.integrations.sklearn")

__all__ = ["TrackedEstimator", "default_model_name", "fit_in_progress", "record_fit"]

#: True while a TrackedEstimator fit runs in this thread/task: fits nested inside it
#: (a TrackedEstimator inside a Pipeline or a search that is itself tracked) record nothing,
#: since the outer training already holds their params (nested, by name) and the final scores.
_IN_FIT: contextvars.ContextVar[bool] = contextvars.ContextVar("modeltrail_sklearn_fit", default=False)

#: Methods the router maps one to one onto the wrapped estimator.
_ROUTED = (
    "fit", "partial_fit", "predict", "predict_proba", "predict_log_proba", "decision_function",
    "score", "transform", "inverse_transform", "fit_transform", "fit_predict",
)  # fmt: skip


def _estimator_has(attr: str) -> Callable[[Any], bool]:
    """For ``available_if``: the fitted estimator has ``attr`` (the unfitted one before fit)."""

    def check(self: TrackedEstimator) -> bool:
        inner = self.__dict__.get("estimator_", self.estimator)
        getattr(inner, attr)  # raises the wrapped estimator's own AttributeError
        return True

    return check


class TrackedEstimator(BaseEstimator):
    """Wrap any scikit-learn estimator; each ``fit`` becomes a modeltrail training.

    Parameters
    ----------
    estimator : estimator
        What is trained. It is cloned at fit time; the fitted clone is ``estimator_``.
    model : str, default=None
        The model's name in the ledger; the wrapped estimator's class name when None.
    uri : str, default=None
        Database URL; None means ``MODELTRAIL_URI`` or ``./modeltrail.db``, read at fit time.
    dataset_name : str, default=None
        Name of the training data's fingerprint; ``"<model>-train"`` when None.
    validation_data : tuple (X_val, y_val), default=None
        Scored after fit with the same metrics as the training data, prefixed ``val_``.
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
        dataset_name: str | None = None,
        validation_data: tuple[Any, Any] | None = None,
        artifact_dir: str | os.PathLike[str] | None = None,
        log_every_fit: bool = False,
    ) -> None:
        self.estimator = estimator
        self.model = model
        self.uri = uri
        self.dataset_name = dataset_name
        self.validation_data = validation_data
        self.artifact_dir = artifact_dir
        self.log_every_fit = log_every_fit

    # ------------------------------------------------------------- fitting
    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> TrackedEstimator:
        """Fit a clone of the wrapped estimator and record the training."""
        self._tracked_fit("fit", X, y, fit_params)
        return self

    @available_if(_estimator_has("fit_transform"))
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """The wrapped estimator's ``fit_transform``, recorded like ``fit``."""
        return self._tracked_fit("fit_transform", X, y, fit_params)

    @available_if(_estimator_has("fit_predict"))
    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """The wrapped estimator's ``fit_predict``, recorded like ``fit``."""
        return self._tracked_fit("fit_predict", X, y, fit_params)

    @available_if(_estimator_has("partial_fit"))
    def partial_fit(self, X: Any, y: Any = None, **params: Any) -> TrackedEstimator:
        """Delegated to the wrapped estimator; incremental updates are not recorded."""
        if "estimator_" not in self.__dict__:
            self.estimator_ = clone(self.estimator)
            self.training_id_ = self.training_uuid_ = self.version_ = None  # incremental updates are not recorded
        self.estimator_.partial_fit(X, y, **self._route("partial_fit", params))
        return self

    # ---------------------------------------------------------- delegation
    @available_if(_estimator_has("predict"))
    def predict(self, X: Any, **params: Any) -> Any:
        return self._fitted().predict(X, **self._route("predict", params))

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X: Any, **params: Any) -> Any:
        return self._fitted().predict_proba(X, **self._route("predict_proba", params))

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X: Any, **params: Any) -> Any:
        return self._fitted().predict_log_proba(X, **self._route("predict_log_proba", params))

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X: Any, **params: Any) -> Any:
        return self._fitted().decision_function(X, **self._route("decision_function", params))

    @available_if(_estimator_has("score_samples"))
    def score_samples(self, X: Any) -> Any:
        return self._fitted().score_samples(X)

    @available_if(_estimator_has("transform"))
    def transform(self, X: Any, **params: Any) -> Any:
        return self._fitted().transform(X, **self._route("transform", params))

    @available_if(_estimator_has("inverse_transform"))
    def inverse_transform(self, X: Any, **params: Any) -> Any:
        return self._fitted().inverse_transform(X, **self._route("inverse_transform", params))

    @available_if(_estimator_has("score"))
    def score(self, X: Any, y: Any = None, **params: Any) -> Any:
        return self._fitted().score(X, y, **self._route("score", params))

    @available_if(_estimator_has("get_feature_names_out"))
    def get_feature_names_out(self, input_features: Any = None) -> Any:
        return self._fitted().get_feature_names_out(input_features)

    @available_if(_estimator_has("set_output"))
    def set_output(self, *, transform: str | None = None) -> TrackedEstimator:
        """Configure the output container of the wrapped (and the fitted) estimator."""
        self.estimator.set_output(transform=transform)
        if "estimator_" in self.__dict__:
            self.estimator_.set_output(transform=transform)
        return self

    @property
    def classes_(self) -> Any:
        return self._fitted().classes_

    @property
    def n_features_in_(self) -> int:
        return int(self._fitted().n_features_in_)

    @property
    def feature_names_in_(self) -> Any:
        return self._fitted().feature_names_in_

    def __getattr__(self, name: str) -> Any:
        # Any other public attribute of the fitted estimator (feature_importances_, coef_,
        # best_params_, cv_results_, staged_predict, ...). Only reached when normal lookup fails.
        if not name.startswith("_"):
            fitted = self.__dict__.get("estimator_")
            if fitted is not None:
                return getattr(fitted, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        from modeltrail._config import mask_password

        return mask_password(super().__repr__(N_CHAR_MAX))  # the uri's password stays out of logs

    def __sklearn_is_fitted__(self) -> bool:
        return "estimator_" in self.__dict__

    def __sklearn_tags__(self) -> Any:
        return copy.deepcopy(get_tags(self.estimator))

    def get_metadata_routing(self) -> Any:
        mapping = MethodMapping()
        for method in _ROUTED:
            mapping.add(caller=method, callee=method)
        return MetadataRouter(owner=self).add(estimator=self.estimator, method_mapping=mapping)

    # ------------------------------------------------------------- internals
    def _fitted(self) -> Any:
        check_is_fitted(self, "estimator_")  # NotFittedError is an AttributeError: hasattr stays honest
        return self.__dict__["estimator_"]

    def _route(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if not _routing_enabled():
            return params
        return dict(process_routing(self, method, **params).estimator[method])

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
            not isinstance(self.validation_data, (tuple, list)) or len(self.validation_data) != 2
        ):
            raise ValueError(
                f"validation_data must be a pair (X_val, y_val), got {type(self.validation_data).__name__}"
            )
        estimator = clone(self.estimator)
        params = self._route(method, fit_params)
        result, run, version = self._record_around(estimator, lambda: getattr(estimator, method)(X, y, **params), X, y)
        # Fitted state is set only once fit succeeded: a failed fit leaves nothing that looks fitted.
        self.estimator_ = estimator
        self.training_id_ = run.id if run is not None else None
        self.training_uuid_ = run.uuid if run is not None else None
        self.version_ = version
        return result

    def _record_around(
        self, estimator: Any, fit: Callable[[], Any], X: Any, y: Any
    ) -> tuple[Any, Training | None, int | None]:
        """Call ``fit`` (which fits ``estimator`` in place) inside a training: (result, training, version)."""
        run: Training | None = None
        own = False
        if self.log_every_fit or not (_IN_FIT.get() or _inside_cv_fold()):
            import modeltrail

            active = None if self.log_every_fit else modeltrail.active_training()
            if active is not None and active.status == "running":
                run = active
                with guarded("sklearn: log params"):
                    _log_new_params(active, _estimator_params(estimator))
                    self._attach_dataset(active, X, y)
            else:
                run = self._start(estimator, X, y)
                own = run is not None

        token = _IN_FIT.set(True)
        try:
            if own:
                assert run is not None
                with guarded("sklearn: start training"):
                    run.__enter__()  # makes it modeltrail.active_training() for autolog and nested fits
            try:
                with _marked(run if own else None, "train"):
                    started = time.perf_counter()
                    result = fit()
                    fit_time = time.perf_counter() - started
                if run is not None:
                    self._record(run, estimator, X, y, fit_time, stages=own)
            except BaseException as e:
                if own:
                    assert run is not None
                    with guarded("sklearn: record failure"):
                        run.__exit__(type(e), e, e.__traceback__)
                raise
            version = None
            if own:
                assert run is not None
                with guarded("sklearn: finish training"):
                    run.__exit__(None, None, None)
                    version = run.version.number if run.version is not None else None
        finally:
            _IN_FIT.reset(token)
        return result, run, version

    def _start(self, estimator: Any, X: Any, y: Any) -> Training | None:
        """A new training for this fit, or None when modeltrail cannot record (warned once)."""
        dataset = None
        with guarded("sklearn: dataset fingerprint"):
            dataset = _fingerprint(X, y, self.dataset_name or f"{self._model_name()}-train")
        with guarded("sklearn: start training"):
            import modeltrail

            params = _estimator_params(estimator)
            tracker = modeltrail.Tracker(self.uri)
            return tracker.training(
                self._model_name(),
                framework="sklearn",
                model_type=_model_type(estimator),
                params=params,
                dataset=dataset,
                seeds={k: v for k, v in params.items() if k.split("__")[-1] == "random_state" and _is_seed(v)},
            )
        return None

    def _attach_dataset(self, run: Training, X: Any, y: Any) -> None:
        """Give an enclosing training the fingerprint of X, unless it already names a dataset."""
        if run.id is not None and run.tracker.get_training(run.id).dataset is None:
            dataset = _fingerprint(X, y, self.dataset_name or f"{run.model_name}-train")
            if dataset is not None:
                run.set_dataset(dataset)

    def _record(self, run: Training, fitted: Any, X: Any, y: Any, fit_time: float, *, stages: bool = False) -> None:
        """Everything known after fit: metrics (in an "evaluate" stage of a training it owns), search results, the
        saved model."""
        with _marked(run if stages else None, "evaluate"):
            with guarded("sklearn: metrics"):
                metrics: dict[str, float] = {"fit_time_s": fit_time}
                if _reusable(X):
                    metrics.update(_metrics(fitted, X, y))
                run.log_metrics(metrics)
            if self.validation_data is not None:
                with guarded("sklearn: validation metrics"):
                    X_val, y_val = self.validation_data
                    run.log_metrics({f"val_{k}": v for k, v in _metrics(fitted, X_val, y_val).items()})
        if hasattr(fitted, "cv_results_"):
            with guarded("sklearn: search results"):
                _log_search(run, fitted)
        with guarded("sklearn: artifact"):
            self._save_artifact(run, fitted)

    def _save_artifact(self, run: Training, fitted: Any) -> None:
        import joblib

        to_save = getattr(fitted, "best_estimator_", fitted)  # a search: the refit best estimator
        directory = (
            Path(self.artifact_dir) if self.artifact_dir is not None else Path("artifacts") / _safe(run.model_name)
        )
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"training-{run.id if run.id is not None else run.uuid}.joblib"
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


def record_fit(estimator: Any, fit: Callable[[], Any], X: Any, y: Any, *, model: str, uri: str | None) -> Any:
    """Record ``fit()`` — a fit of ``estimator`` in place, as autolog patches it — like a TrackedEstimator would."""
    result, _run, _version = TrackedEstimator(estimator, model=model, uri=uri)._record_around(estimator, fit, X, y)
    return result


# ------------------------------------------------------------------ helpers
#: scikit-learn's per-fold workers (searches, cross_validate, cross_val_predict, curves): a fit
#: made by one of them trains a throwaway fold model, recorded only with ``log_every_fit=True``.
_CV_FOLD_FUNCTIONS = frozenset(
    {"_fit_and_score", "_fit_and_predict", "_incremental_fit_estimator", "_fit_and_score_over_thresholds"}
)


def _inside_cv_fold() -> bool:
    """Whether this fit is called by scikit-learn's cross-validation machinery (in any process)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name in _CV_FOLD_FUNCTIONS and str(frame.f_globals.get("__name__", "")).startswith(
            "sklearn.model_selection"
        ):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def _marked(run: Training | None, name: str) -> Iterator[None]:
    """Record the block as stage ``name`` of ``run`` (nothing when None); the stage fails with the block's exception.

    Bookkeeping failures warn once and never stop the fit.
    """
    stage = None
    if run is not None:
        with guarded(f"sklearn: {name} stage"):
            stage = run.begin_stage(name)
    try:
        yield
    except BaseException as e:
        if stage is not None:
            with guarded(f"sklearn: {name} stage"):
                stage.end(e)
        raise
    if stage is not None:
        with guarded(f"sklearn: {name} stage"):
            stage.end()


def _estimator_params(estimator: Any) -> dict[str, Any]:
    """``get_params(deep=True)`` plus the class, in modeltrail._values' readable form (nested
    estimators by their repr), with passwords of URLs masked: a nested TrackedEstimator's
    ``uri`` must not put a database password into the ledger."""
    from modeltrail._config import mask_password
    from modeltrail._values import to_jsonable

    def masked(value: Any) -> Any:
        if isinstance(value, str):
            return mask_password(value)
        if isinstance(value, list):
            return [masked(v) for v in value]
        if isinstance(value, dict):
            return {k: masked(v) for k, v in value.items()}
        return value

    cls = type(estimator)
    params = {k: masked(to_jsonable(v)) for k, v in estimator.get_params(deep=True).items()}
    params["estimator_class"] = f"{cls.__module__}.{cls.__qualname__}"
    return params


def _log_new_params(run: Training, params: Mapping[str, Any]) -> None:
    """Log params an enclosing training does not have yet; the first value of a key wins."""
    fresh = {k: v for k, v in params.items() if k not in run.params}
    skipped = sorted(set(params) - set(fresh))
    if skipped:
        log.debug("training %s already has params %s; keeping its values", run.id, skipped)
    if fresh:
        run.log_params(fresh)


def _model_type(estimator: Any) -> str | None:
    tags = get_tags(estimator)
    if tags.estimator_type is not None:
        return str(tags.estimator_type)
    return "transformer" if tags.transformer_tags is not None else None


def _is_seed(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _reusable(X: Any) -> bool:
    """X can be read again after fit (not a one-shot iterator)."""
    return hasattr(X, "shape") or hasattr(X, "__len__")


def _fingerprint(X: Any, y: Any, name: str) -> Dataset | None:
    from modeltrail import Dataset

    if not _reusable(X):
        return None  # hashing a generator would consume what fit needs
    return Dataset.from_arrays(X, y if y is None or _reusable(y) else None, name=name)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def _metrics(fitted: Any, X: Any, y: Any) -> dict[str, float]:
    """Scores suited to the estimator's kind; one that does not apply to this data is left out."""
    kind = _model_type(fitted)
    if kind == "clusterer":
        inertia = getattr(fitted, "inertia_", None)
        return {"inertia": float(inertia)} if inertia is not None else {}
    if y is None or kind not in ("classifier", "regressor") or not hasattr(fitted, "predict"):
        return {}
    from sklearn import metrics as skm

    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UndefinedMetricWarning and friends on tiny or one-class data
        y_pred = fitted.predict(X)

        def add(key: str, fn: Callable[[], Any]) -> None:
            try:
                value = float(fn())
            except Exception as e:
                log.debug("metric %s skipped: %s", key, e)
                return
            if not math.isnan(value):
                out[key] = value

        if kind == "regressor":
            add("r2", lambda: skm.r2_score(y, y_pred))
            add("mae", lambda: skm.mean_absolute_error(y, y_pred))
            add("rmse", lambda: math.sqrt(skm.mean_squared_error(y, y_pred)))
            return out

        import numpy as np

        classes = getattr(fitted, "classes_", None)
        binary = isinstance(classes, np.ndarray) and classes.ndim == 1 and len(classes) == 2
        add("accuracy", lambda: skm.accuracy_score(y, y_pred))
        if binary:
            assert classes is not None
            add("f1", lambda: skm.f1_score(y, y_pred, pos_label=classes[1], average="binary"))
        else:
            add("f1", lambda: skm.f1_score(y, y_pred, average="weighted"))
        if not hasattr(fitted, "predict_proba") or not isinstance(classes, np.ndarray) or classes.ndim != 1:
            return out
        try:
            proba = fitted.predict_proba(X)
        except Exception as e:
            log.debug("predict_proba failed; no log_loss / roc_auc: %s", e)
            return out
        add("log_loss", lambda: skm.log_loss(y, proba, labels=classes))
        if binary:
            add("roc_auc", lambda: skm.roc_auc_score(np.asarray(y) == classes[1], proba[:, 1]))
        else:
            add("roc_auc", lambda: skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
    return out


def _log_search(run: Training, search: Any) -> None:
    """One training per search: best params, best CV score, per-candidate mean test scores."""
    best = getattr(search, "best_params_", None)
    if isinstance(best, Mapping):
        _log_new_params(run, {f"best.{k}": v for k, v in best.items()})
    best_score = getattr(search, "best_score_", None)
    if best_score is not None:
        run.log_metric("cv_best_score", float(best_score))
    results = search.cv_results_
    for key in sorted(k for k in results if k.startswith("mean_test_")):
        name = "cv_mean_test_score" if key == "mean_test_score" else f"cv_{key}"
        for step, value in enumerate(results[key]):
            run.log_metric(name, float(value), step=step)
