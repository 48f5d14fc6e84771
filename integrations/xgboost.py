"""XGBoost native training: ``xgboost.train(..., callbacks=[ModeltrailCallback(model="churn-xgb")])``.

What one ``train`` records (one training; a new version when it finishes):

* params: the ``params`` given to ``xgboost.train`` (a list of pairs, as for several ``eval_metric``, becomes
  a mapping whose repeated keys hold lists; a None value, XGBoost's default, is left out), ``num_boost_round``
  and ``early_stopping_rounds`` when set;
* metrics: every round's eval results, ``<eval set>-<metric>`` (``train-logloss``, ``validation_0-auc``: the
  names XGBoost prints) at step = the round's index, so each key's history equals ``evals_result[set][metric]``;
* context: ``best_iteration`` and ``best_score`` when early stopping ran (XGBoost's own values, 0-based
  iteration), and ``feature_importance`` with ``gain`` and ``weight`` per feature (the 100 of most gain);
* the booster, saved with ``save_model`` as JSON (``model_format="ubj"`` for UBJSON), as the version's artifact.

``model_type`` follows the objective (``binary:``/``multi:`` -> classifier, ``reg:``/``count:``/``survival:`` ->
regressor, ``rank:`` -> ranker). The scikit-learn wrappers (``XGBClassifier(callbacks=[...])``) call
``xgboost.train`` and are recorded the same way; ``xgboost.cv`` is not recorded (said once).

XGBoost calls no hook when ``train`` raises: a training whose ``train`` never returned is recorded failed when
the callback is next used, garbage-collected, or at interpreter exit; never as a version. Inside ``with
tracker.training(...)`` or ``@autolog`` the rounds log into that training and its block ends it.
modeltrail's own failures warn once and training goes on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modeltrail._adapter import find_in_callers, guard, require

xgboost = require("xgboost", "xgboost")

from ._boosting import BoostingRecorder, Recorded, importance_table, model_type_of  # noqa: E402

if TYPE_CHECKING:
    from types import FrameType

    from modeltrail._tracker import Tracker

FRAMEWORK = "xgboost"
INTERRUPTED = "xgboost.train stopped before after_training (it raised or was interrupted)"
_FORMATS = {"json": ".json", "ubj": ".ubj"}
_TRAIN_CODE = getattr(xgboost.training.train, "__wrapped__", xgboost.training.train).__code__
_Base: Any = xgboost.callback.TrainingCallback


class ModeltrailCallback(_Base, Recorded):
    """Record each ``xgboost.train`` this callback is given to as a training of ``model`` (default ``"xgboost"``).

    ``tracker`` is the :class:`~modeltrail.Tracker` to record into, or ``uri`` a database URL (default:
    ``MODELTRAIL_URI``, then ``./modeltrail.db``). ``params`` adds params of your own; ``tags`` tag the model.
    The model name, ``params`` and ``tags`` are checked here (a ``ValidationError`` at the call). After ``train``,
    ``training_id`` and ``version`` tell what was recorded.
    """

    def __init__(
        self,
        model: str | None = None,
        uri: str | Tracker | None = None,
        *,
        tracker: Tracker | None = None,
        artifact_dir: str | os.PathLike[str] | None = None,
        save_model: bool = True,
        model_format: str = "json",
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if model_format not in _FORMATS:
            from modeltrail._errors import ValidationError

            raise ValidationError(f"model_format is 'json' or 'ubj', got {model_format!r}", value=model_format)
        self.model_format = model_format
        self._rec = BoostingRecorder(
            FRAMEWORK,
            model=model,
            tracker=tracker if tracker is not None else uri,
            artifact_dir=artifact_dir,
            save_model=save_model,
            description=description,
            tags=tags,
            params=params,
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"model_format": self.model_format, "rec": self._rec}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.model_format, self._rec = state["model_format"], state["rec"]

    def __deepcopy__(self, memo: dict[int, Any]) -> ModeltrailCallback:
        # XGBoost's scikit-learn wrappers deep-copy their callbacks on every fit: a copy records into the same ledger.
        copy = ModeltrailCallback.__new__(ModeltrailCallback)
        copy.__setstate__(self.__getstate__())
        return copy

    # ---------------------------------------------------------------- hooks
    def before_training(self, model: Any) -> Any:
        self._before(model)
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: Mapping[str, Mapping[str, Any]]) -> bool:
        if self._rec.life.live is not None:
            self._rec.log_round(epoch, _latest(evals_log), _goal)
        return False

    def after_training(self, model: Any) -> Any:
        self._after(model)
        return model

    # ------------------------------------------------------------ internals
    @guard("xgboost: starting the training")
    def _before(self, model: Any) -> None:
        if not isinstance(model, xgboost.Booster):
            self._rec.abandon(INTERRUPTED)
            self._rec.life.reset()
            self._rec.life.tell_once("cv", "xgboost.cv is not recorded (only xgboost.train is)", stacklevel=5)
            return
        call = find_in_callers(_train_frame) or {}
        params = {k: v for k, v in _params(call.get("params")).items() if v is not None}  # None: the default
        params["num_boost_round"] = call.get("num_boost_round")
        if call.get("early_stopping_rounds"):
            params["early_stopping_rounds"] = call["early_stopping_rounds"]
        if not call:
            params.pop("num_boost_round")
            self._rec.life.tell_once("params", "xgboost.train's params were not found; recording the callback's only")
        kind = model_type_of(params.get("objective"), "reg:squarederror")
        self._rec.begin(self, FRAMEWORK, params, model_type=kind, model_class=model, interrupted=INTERRUPTED)

    @guard("xgboost: finishing the training")
    def _after(self, model: Any) -> None:
        if self._rec.life.live is None or not isinstance(model, xgboost.Booster):
            return
        context: dict[str, Any] = {}
        best_iteration, best_score = model.attr("best_iteration"), model.attr("best_score")
        if best_iteration is not None:
            context["best_iteration"] = int(best_iteration)
        if best_score is not None:
            context["best_score"] = float(best_score)
        kinds = {kind: model.get_score(importance_type=kind) for kind in ("gain", "weight")}
        if any(kinds.values()):
            context["feature_importance"] = importance_table(kinds, "gain")
        suffix = _FORMATS[self.model_format]

        def save(path: Path) -> None:
            model.save_model(os.fspath(path))

        self._rec.end(context=context, save=save, suffix=suffix)


def _train_frame(frame: FrameType) -> dict[str, Any] | None:
    """``xgboost.train``'s arguments, from its frame (a callback is handed only the booster)."""
    if frame.f_code is not _TRAIN_CODE:
        return None
    names = ("params", "num_boost_round", "early_stopping_rounds")
    return {k: frame.f_locals.get(k) for k in names} or None


def _params(given: Any) -> dict[str, Any]:
    """XGBoost's params as a mapping: a list of pairs keeps every value of a repeated key (as a list)."""
    if isinstance(given, Mapping):
        return {str(k): v for k, v in given.items()}
    out: dict[str, Any] = {}
    if isinstance(given, Sequence) and not isinstance(given, (str, bytes)):
        for key, value in given:
            key = str(key)
            if key in out:
                out[key] = [*out[key], value] if isinstance(out[key], list) else [out[key], value]
            else:
                out[key] = value
    return out


#: XGBoost's built-in metrics: those it maximises (as its EarlyStopping decides) and those it minimises. A custom
#: metric's direction is not known (XGBoost is told by ``maximize=``): none is declared for it.
_MAXIMISED = ("auc", "aucpr", "pre", "map", "ndcg", "interval-regression-accuracy")
_MINIMISED = ("rmse", "rmsle", "mae", "mape", "mphe", "logloss", "error", "merror", "mlogloss", "poisson-nloglik",
              "gamma-nloglik", "cox-nloglik", "gamma-deviance", "tweedie-nloglik", "aft-nloglik")  # fmt: skip


def _goal(key: str) -> str | None:
    """Which way is better for ``<eval set>-<metric>``, when the metric is one of XGBoost's own."""
    for names, goal in ((_MAXIMISED, "max"), (_MINIMISED, "min")):
        for name in names:
            if re.search(rf"-{re.escape(name)}(@[^-]*)?-?$", key):  # ndcg@5, error@0.7, ndcg@5- too
                return goal
    return None


def _latest(evals_log: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The round's values: the last entry of each eval set's metric list (a ``(mean, std)`` pair: the mean)."""
    out: dict[str, float] = {}
    for data, metrics in evals_log.items():
        for metric, values in metrics.items():
            if len(values):
                value = values[-1]
                out[f"{data}-{metric}"] = float(value[0] if isinstance(value, tuple) else value)
    return out


__all__ = ["ModeltrailCallback"]
