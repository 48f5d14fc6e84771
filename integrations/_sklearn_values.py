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


def metrics(fitted: Any, X: Any, y: Any, sample_weight: Any = None) -> dict[str, float]:
    """Scores suited to the estimator's kind, weighted by ``sample_weight`` as the fit was; one that does not
    apply to this data is left out."""
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

        w = sample_weight
        if kind == "regressor":
            add("r2", lambda: skm.r2_score(y, y_pred, sample_weight=w))
            add("mae", lambda: skm.mean_absolute_error(y, y_pred, sample_weight=w))
            add("rmse", lambda: math.sqrt(skm.mean_squared_error(y, y_pred, sample_weight=w)))
            return out

        import numpy as np

        classes = getattr(fitted, "classes_", None)
        binary = isinstance(classes, np.ndarray) and classes.ndim == 1 and len(classes) == 2
        add("accuracy", lambda: skm.accuracy_score(y, y_pred, sample_weight=w))
        if binary:
            assert classes is not None
            add("f1", lambda: skm.f1_score(y, y_pred, pos_label=classes[1], average="binary", sample_weight=w))
        else:
            add("f1", lambda: skm.f1_score(y, y_pred, average="weighted", sample_weight=w))
        if not hasattr(fitted, "predict_proba") or not isinstance(classes, np.ndarray) or classes.ndim != 1:
            return out
        try:
            proba = fitted.predict_proba(X)
        except Exception as e:
            log.debug("predict_proba failed; no log_loss / roc_auc: %s", e)
            return out
        add("log_loss", lambda: skm.log_loss(y, proba, labels=classes, sample_weight=w))
        if binary:
            add("roc_auc", lambda: skm.roc_auc_score(np.asarray(y) == classes[1], proba[:, 1], sample_weight=w))
        else:
            add("roc_auc", lambda: skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes, sample_weight=w))
    return out


def sample_weight_of(estimator: Any, fit_params: Mapping[str, Any]) -> Any:
    """The weights ``fit`` was given: ``sample_weight``, or a Pipeline's last step's ``<step>__sample_weight``."""
    if fit_params.get("sample_weight") is not None:
        return fit_params["sample_weight"]
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps and isinstance(steps[-1], tuple):
        return fit_params.get(f"{steps[-1][0]}__sample_weight")
    return None


# ------------------------------------------------------------ training curves
def final_estimator(fitted: Any) -> Any:
    """What actually learned: a search's refit best estimator, a Pipeline's last step (nested ones too)."""
    for _ in range(8):
        inner = getattr(fitted, "best_estimator_", None)
        if inner is None:
            steps = getattr(fitted, "steps", None)
            inner = steps[-1][1] if isinstance(steps, list) and steps and isinstance(steps[-1], tuple) else None
        if inner is None or inner == "passthrough":
            return fitted
        fitted = inner
    return fitted


def _scorer_name(scoring: Any, kind: str | None) -> str:
    """The name of a scikit-learn ``scoring``: its string, a scorer's function name, else the estimator's score."""
    if isinstance(scoring, str):
        return scoring
    if scoring is None:
        return {"classifier": "accuracy", "regressor": "r2"}.get(kind or "", "score")
    func = getattr(scoring, "_score_func", scoring)
    return str(getattr(func, "__name__", "score")).strip("<>") or "score"


def curves(fitted: Any) -> dict[str, list[float]]:
    """The per-iteration record a fitted model keeps of its own training, by metric name; step = list index.

    * ``HistGradientBoosting*``: ``train_score_`` and (with early stopping on held-out data)
      ``validation_score_`` as ``train_<scorer>`` / ``validation_<scorer>``; index 0 is the model before the
      first iteration. With ``scoring="loss"`` scikit-learn stores the negated loss (higher is better); it is
      recorded as the loss itself (``train_loss``), so that the name's direction holds.
    * ``GradientBoosting*``: ``train_score_`` (the in-bag loss) as ``train_loss``, ``oob_scores_`` as ``oob_loss``.
    * ``MLP*``: ``loss_curve_`` as ``loss``, ``validation_scores_`` as ``validation_accuracy`` / ``validation_r2``.
    * LightGBM's ``evals_result_`` and XGBoost's ``evals_result()``: ``<eval set>-<metric>``
      (``valid_0-binary_logloss``, ``validation_0-logloss``), one point per boosting round.
    """
    model = final_estimator(fitted)
    kind = model_type(model)
    out: dict[str, list[float]] = {}
    if hasattr(model, "do_early_stopping_"):  # HistGradientBoosting
        name = _scorer_name(getattr(model, "scoring", None), kind)
        sign = -1.0 if name == "loss" else 1.0
        for prefix, attribute in (("train", "train_score_"), ("validation", "validation_score_")):
            values = getattr(model, attribute, None)
            if values is not None and len(values):
                out[f"{prefix}_{name}"] = [sign * float(v) for v in values]
    elif hasattr(model, "train_score_") and hasattr(model, "estimators_"):  # GradientBoosting
        out["train_loss"] = [float(v) for v in model.train_score_]
        oob = getattr(model, "oob_scores_", None)
        if oob is not None and len(oob):
            out["oob_loss"] = [float(v) for v in oob]
    if isinstance(getattr(model, "loss_curve_", None), list):  # MLP with the sgd/adam solvers
        out["loss"] = [float(v) for v in model.loss_curve_]
        scores = getattr(model, "validation_scores_", None)
        if scores:
            out[f"validation_{'accuracy' if kind == 'classifier' else 'r2'}"] = [float(v) for v in scores]
    for dataset, per_metric in _booster_evals(model).items():
        for metric, values in per_metric.items():
            out[f"{dataset}-{metric}"] = [float(v) for v in values]
    return out


def _booster_evals(model: Any) -> Mapping[str, Mapping[str, Any]]:
    """LightGBM's ``evals_result_`` or XGBoost's ``evals_result()``; empty without an ``eval_set``."""
    found = getattr(model, "evals_result_", None)  # LightGBM (XGBoost keeps it private until asked)
    if isinstance(found, Mapping):
        return found
    evals = getattr(model, "evals_result", None)
    if callable(evals) and type(model).__module__.startswith("xgboost"):
        try:
            found = evals()
        except Exception:  # XGBoostError: "No evaluation result, `eval_set` is not used during training."
            return {}
        return found if isinstance(found, Mapping) else {}
    return {}


def iterations(fitted: Any) -> dict[str, float]:
    """How many iterations ran and which was best, where early stopping decided it."""
    model = final_estimator(fitted)
    out: dict[str, float] = {}
    if hasattr(model, "do_early_stopping_") and getattr(model, "do_early_stopping_", False):
        out["n_iter"] = float(model.n_iter_)
    best = None
    if type(model).__module__.startswith("lightgbm"):
        best = getattr(model, "best_iteration_", None) or None  # 0: no early stopping
    elif type(model).__module__.startswith("xgboost"):
        try:
            best = model.best_iteration  # only defined with early stopping
        except AttributeError:
            best = None
    if best is not None:
        out["best_iteration"] = float(best)
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
