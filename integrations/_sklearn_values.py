"""What a scikit-learn estimator shows: its params, the scores that suit its kind, a search's results."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sklearn.utils import get_tags

from modeltrail._adapter import infer_model_type, log_new_params

if TYPE_CHECKING:
    from modeltrail._dataset import Dataset
    from modeltrail._training import Training

log = logging.getLogger("modeltrail.integrations.sklearn")


def estimator_params(estimator: Any) -> dict[str, Any]:
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


def model_type(estimator: Any) -> str | None:
    """The estimator's kind in modeltrail's vocabulary, from its tags: its ``estimator_type`` (a classifier that
    also transforms, such as LinearDiscriminantAnalysis, is a classifier), else ``transformer`` when it
    transforms."""
    tags = get_tags(estimator)
    return infer_model_type(tags.estimator_type, "transformer" if tags.transformer_tags is not None else None)


def is_seed(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def reusable(X: Any) -> bool:
    """X can be read again after fit (not a one-shot iterator)."""
    return hasattr(X, "shape") or hasattr(X, "__len__")


def fingerprint(X: Any, y: Any, name: str) -> Dataset | None:
    from modeltrail import Dataset

    if not reusable(X):
        return None  # hashing a generator would consume what fit needs
    return Dataset.from_arrays(X, y if y is None or reusable(y) else None, name=name)


def metrics(fitted: Any, X: Any, y: Any) -> dict[str, float]:
    """Scores suited to the estimator's kind; one that does not apply to this data is left out."""
    kind = model_type(fitted)
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


def log_search(run: Training, search: Any) -> None:
    """One training per search: best params, best CV score, per-candidate mean test scores."""
    best = getattr(search, "best_params_", None)
    if isinstance(best, Mapping):
        log_new_params(run, {f"best.{k}": v for k, v in best.items()})
    best_score = getattr(search, "best_score_", None)
    if best_score is not None:
        run.log_metric("cv_best_score", float(best_score))
    results = search.cv_results_
    for key in sorted(k for k in results if k.startswith("mean_test_")):
        name = "cv_mean_test_score" if key == "mean_test_score" else f"cv_{key}"
        for step, value in enumerate(results[key]):
            run.log_metric(name, float(value), step=step)
