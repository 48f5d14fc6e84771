"""LightGBM native training: ``lightgbm.train(..., callbacks=[ModeltrailCallback(model="churn-lgbm")])``.

What one ``train`` records (one training; a new version when it finishes):

* params: ``env.params`` (the params ``lightgbm.train`` trains with) and ``num_boost_round``;
* metrics: every iteration's ``env.evaluation_result_list``, ``<eval set>-<metric>`` (``training-l2``,
  ``valid_0-binary_logloss``) at step = the iteration's index, so each key's history equals what
  ``lightgbm.record_evaluation`` keeps for that eval set and metric, point by point;
* context: ``best_iteration`` (LightGBM's own, 1-based: the number of iterations kept) and ``best_score`` (per
  key) when early stopping ended the loop, and ``feature_importance`` with ``gain`` and ``split`` per feature
  (the 100 of most gain);
* the booster's ``save_model`` text as the version's artifact (up to the best iteration when early stopping ran,
  as ``booster.save_model`` writes it after ``train``).

``model_type`` follows the objective (``binary``, ``multiclass``, ``cross_entropy`` -> classifier, ``lambdarank``
-> ranker, the regression objectives -> regressor). The scikit-learn wrappers (``LGBMClassifier.fit(...,
callbacks=[...])``) call ``lightgbm.train`` and are recorded the same way; ``lightgbm.cv`` is not (said once).

How the end is seen: LightGBM calls a callback after each iteration and has no "training ended" hook. The
callback (``order = 20``, as ``record_evaluation``, so it runs before ``early_stopping``) ends the training
after the last iteration's callbacks ran, or when a callback after it raises ``EarlyStopException``: for that it
wraps the entries after it in ``lightgbm.train``'s own, per-call list of callbacks (your callback objects are
not touched). A ``train`` that raises elsewhere (a custom objective) is recorded failed when the callback is
next used, garbage-collected, or at interpreter exit; never as a version. Inside ``with tracker.training(...)``
or ``@autolog`` the iterations log into that training and its block ends it. modeltrail's own failures warn once
and training goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modeltrail._adapter import find_in_callers, guard, guarded, require

lightgbm = require("lightgbm", "lightgbm")

from ._boosting import BoostingRecorder, Recorded, importance_table, model_type_of  # noqa: E402

if TYPE_CHECKING:
    from types import FrameType

    from modeltrail._tracker import Tracker

FRAMEWORK = "lightgbm"
INTERRUPTED = "lightgbm.train stopped before its last iteration's callbacks (it raised or was interrupted)"
_TRAIN_CODE = lightgbm.engine.train.__code__
_EarlyStop: type[BaseException] = lightgbm.callback.EarlyStopException


class ModeltrailCallback(Recorded):
    """Record each ``lightgbm.train`` this callback is given to as a training of ``model`` (default ``"lightgbm"``).

    ``tracker`` is the :class:`~modeltrail.Tracker` to record into, or ``uri`` a database URL (default:
    ``MODELTRAIL_URI``, then ``./modeltrail.db``). ``params`` adds params of your own; ``tags`` tag the model.
    The model name, ``params`` and ``tags`` are checked here (a ``ValidationError`` at the call). After ``train``,
    ``training_id`` and ``version`` tell what was recorded.
    """

    order = 20  # with record_evaluation (20): after log_evaluation (10), before early_stopping (30)
    before_iteration = False

    def __init__(
        self,
        model: str | None = None,
        uri: str | Tracker | None = None,
        *,
        tracker: Tracker | None = None,
        artifact_dir: str | os.PathLike[str] | None = None,
        save_model: bool = True,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
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
        self._booster: Any = None  # the booster of the train in progress (its identity tells a new train)
        self._last_on_list = True  # no callback runs after this one: it ends the training itself

    def __getstate__(self) -> dict[str, Any]:
        return {"rec": self._rec}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._rec, self._booster, self._last_on_list = state["rec"], None, True

    def __deepcopy__(self, memo: dict[int, Any]) -> ModeltrailCallback:
        copy = ModeltrailCallback.__new__(ModeltrailCallback)
        copy.__setstate__(self.__getstate__())
        return copy

    # ---------------------------------------------------------------- hook
    def __call__(self, env: Any) -> None:
        if env.model is not self._booster:
            self._begin(env)
        if self._rec.life.live is None:
            return
        results = env.evaluation_result_list
        self._rec.log_round(env.iteration, _results(results), lambda key: _goals(results).get(key))
        if self._last_on_list and env.iteration == env.end_iteration - 1:
            self._end(env, stopped=None)

    # ------------------------------------------------------------ internals
    @guard("lightgbm: starting the training")
    def _begin(self, env: Any) -> None:
        self._booster = env.model
        if not isinstance(env.model, lightgbm.Booster):
            self._rec.abandon(INTERRUPTED)
            self._rec.life.reset()
            self._rec.life.tell_once("cv", "lightgbm.cv is not recorded (only lightgbm.train is)", stacklevel=6)
            return
        params = {str(k): v for k, v in (env.params or {}).items()}
        params["num_boost_round"] = env.end_iteration - env.begin_iteration
        kind = model_type_of(params.get("objective"), "regression")
        run = self._rec.begin(self, FRAMEWORK, params, model_type=kind, model_class=env.model, interrupted=INTERRUPTED)
        self._last_on_list = True
        if run is not None:
            self._watch_the_rest()

    def _watch_the_rest(self) -> None:
        """Wrap the callbacks after this one in ``lightgbm.train``'s list: their early stop ends the training."""
        found: tuple[list[Any], int] | None = find_in_callers(_later_callbacks(self))
        if found is None:
            self._rec.life.tell_once(
                "frame", "lightgbm.train's callback list was not found; an early stop ends the training at exit"
            )
            return
        callbacks, mine = found
        last = len(callbacks) - 1
        self._last_on_list = mine == last
        for i in range(mine + 1, last + 1):
            callbacks[i] = _Watched(callbacks[i], self, last=i == last)

    @guard("lightgbm: finishing the training")
    def _end(self, env: Any, *, stopped: Any) -> None:
        booster, self._booster = env.model, None
        context: dict[str, Any] = {}
        keep: int | None = None
        if stopped is not None:
            keep = int(stopped.best_iteration) + 1  # what lightgbm.train sets as booster.best_iteration
            context["best_iteration"] = keep
            context["best_score"] = _results(stopped.best_score)
        with guarded("lightgbm: feature importance"):
            names = booster.feature_name()
            kinds = {
                kind: dict(
                    zip(names, (float(v) for v in booster.feature_importance(kind, iteration=keep)), strict=True)
                )
                for kind in ("gain", "split")
            }
            context["feature_importance"] = importance_table(kinds, "gain")

        def save(path: Path) -> None:
            booster.save_model(os.fspath(path), num_iteration=keep if keep is not None else -1)

        self._rec.end(context=context, save=save, suffix=".txt")

    def _failed(self, error: BaseException) -> None:
        self._booster = None
        with guarded("lightgbm: recording the failure"):
            self._rec.fail(f"{type(error).__name__}: {error}")


class _Watched:
    """A callback of ``lightgbm.train``'s list that runs after a ModeltrailCallback: tells it how the loop ends."""

    def __init__(self, callback: Callable[[Any], None], owner: ModeltrailCallback, *, last: bool) -> None:
        self.callback, self.owner, self.last = callback, owner, last
        self.order = getattr(callback, "order", 0)
        self.before_iteration = False

    def __call__(self, env: Any) -> None:
        try:
            self.callback(env)
        except _EarlyStop as stop:
            if self.owner._booster is env.model:
                self.owner._end(env, stopped=stop)
            raise
        except BaseException as e:
            if self.owner._booster is env.model:
                self.owner._failed(e)
            raise
        if self.last and env.iteration == env.end_iteration - 1 and self.owner._booster is env.model:
            self.owner._end(env, stopped=None)


def _later_callbacks(owner: ModeltrailCallback) -> Callable[[FrameType], tuple[list[Any], int] | None]:
    def find(frame: FrameType) -> tuple[list[Any], int] | None:
        if frame.f_code is not _TRAIN_CODE:
            return None
        callbacks = frame.f_locals.get("callbacks_after_iter")
        if not isinstance(callbacks, list):
            return None
        for i, callback in enumerate(callbacks):
            if callback is owner:
                return callbacks, i
        return None

    return find


def _goals(results: Any) -> dict[str, str]:
    """Which way is better for each key, as LightGBM says (``is_higher_better``, custom ``feval`` metrics too)."""
    return {f"{item[0]}-{item[1]}": "max" if item[3] else "min" for item in results or ()}


def _results(results: Any) -> dict[str, float]:
    """``(eval set, metric, value, is_higher_better)`` tuples as ``{"<eval set>-<metric>": value}``."""
    return {f"{item[0]}-{item[1]}": float(item[2]) for item in results or ()}


__all__ = ["ModeltrailCallback"]
