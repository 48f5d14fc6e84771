"""What the XGBoost and LightGBM callbacks share: settings checked at the call, one training per ``train``.

Both frameworks call a callback once per boosting round with the eval results so far; neither tells a callback
that ``train`` raised. :class:`BoostingRecorder` holds the adapter lifecycle (``modeltrail._adapter``: join the
active training or own one, the watchdog that records an interrupted fit as failed, warn once) and the shapes
both adapters record alike:

* metric keys ``<eval set>-<metric>`` (``validation_0-logloss``, ``valid_1-binary_logloss``): the name the
  framework prints for the eval set, a dash, the metric's own name, at step = the round's index (0-based), so
  that the history of a key equals the framework's list for that eval set and metric point by point;
* params: the framework's params mapping as given to ``train``, plus ``num_boost_round``;
* ``model_type`` from the objective (:func:`model_type_of`), the objective itself in the params, the booster's
  class as ``model_class`` in the context;
* each metric's goal (``set_metric_goal``, once per model and metric; one you declared is kept), as the framework
  tells it: LightGBM's ``is_higher_better``, XGBoost's maximised metrics (``auc``, ``aucpr``, ``map``, ``ndcg``,
  ``pre``), so ``modeltrail leaderboard <model> --metric valid-l2`` needs no ``--mode``;
* in the training's context: ``best_iteration`` and ``best_score`` (the framework's values, when early
  stopping ran) and ``feature_importance`` by kind (the :data:`TOP_FEATURES` features of most gain);
* the booster saved by the framework's ``save_model`` as the version's model artifact.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modeltrail._adapter import Lifecycle, artifact_path, guarded, infer_model_type, log_new_params, safe_name
from modeltrail._values import check_model_name, check_tags, encode_params, to_jsonable

if TYPE_CHECKING:
    from modeltrail._records import PendingVersion, VersionRecord
    from modeltrail._tracker import Tracker
    from modeltrail._training import Training

#: Feature importances kept per kind in the training's context: the features of most gain, then by name.
TOP_FEATURES = 100


def model_type_of(objective: Any, default_objective: str) -> str | None:
    """The model's kind as the objective tells it, in the shared vocabulary (``_adapter.infer_model_type``):
    ``binary:logistic``, ``multiclass`` -> classifier, ``reg:squarederror``, ``huber`` -> regressor,
    ``rank:ndcg``, ``lambdarank`` -> ranker. No objective is the framework's default; a callable one says nothing."""
    if objective is None:
        objective = default_objective
    return infer_model_type(objective) if isinstance(objective, str) else None


def importance_table(kinds: Mapping[str, Mapping[str, float]], rank_by: str) -> dict[str, dict[str, float]]:
    """Each kind's importances for the :data:`TOP_FEATURES` features of most ``rank_by``, largest first."""
    ranking = kinds.get(rank_by, {})
    features = set().union(*(set(v) for v in kinds.values())) if kinds else set()
    top = sorted(features, key=lambda f: (-float(ranking.get(f, 0.0)), f))[:TOP_FEATURES]
    return {kind: {f: float(values[f]) for f in top if f in values} for kind, values in kinds.items()}


def declare_goals(tracker: Tracker, model: str, goals: Mapping[str, str]) -> None:
    """Declare which way is better for metrics the framework knows it of (``set_metric_goal``), once per model and
    metric: a goal already declared, yours included, is kept. Rankings then need no ``mode`` for ``valid-l2``."""
    if not goals:
        return
    declared = {g.metric for g in tracker.metric_goals(model)}
    for metric, goal in goals.items():
        if metric not in declared:
            tracker.set_metric_goal(model, metric, goal, set_by="modeltrail")


class Recorded:
    """What both callbacks show of their :class:`BoostingRecorder` (``self._rec``)."""

    _rec: BoostingRecorder

    def __repr__(self) -> str:
        return f"ModeltrailCallback(model={self._rec.model!r}, training_id={self.training_id})"

    @property
    def training_id(self) -> int | None:
        """The training the last ``train`` logged into (None while the database is away)."""
        return self._rec.training_id

    @property
    def version(self) -> VersionRecord | PendingVersion | None:
        """The version the last ``train`` became (None when it logged into an enclosing training)."""
        return self._rec.version

    @property
    def tracker(self) -> Tracker:
        return self._rec.life.tracker

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        """``with callback: train(...)``: a ``train`` that raises is recorded failed with its own error, at once."""
        if exc is not None:
            with guarded(f"{self._rec.framework}: recording the failed train"):  # never in place of the user's error
                self._rec.fail(f"{exc_type.__name__ if exc_type else 'Error'}: {exc}")


class BoostingRecorder:
    """One callback's hold on the training of the ``train`` call it is in; settings are checked at the call.

    ``tracker`` is a :class:`~modeltrail.Tracker` or a database URL (None: ``MODELTRAIL_URI``, then
    ``./modeltrail.db``). It pickles as its settings (a Tracker as its URL).
    """

    SETTINGS = ("model", "uri", "artifact_dir", "save_model", "description", "tags", "params")

    def __init__(
        self,
        framework: str,
        *,
        model: str | None,
        tracker: Tracker | str | None,
        artifact_dir: str | os.PathLike[str] | None,
        save_model: bool,
        description: str | None,
        tags: Mapping[str, str] | None,
        params: Mapping[str, Any] | None,
    ) -> None:
        # Bad settings are refused here, at the call, before any training is started.
        self.model = check_model_name(model) if model is not None else None
        encode_params(params or {})
        self.tags = check_tags(tags) or None
        self.framework = framework
        self.life = Lifecycle(framework, tracker)
        self.artifact_dir = os.fspath(artifact_dir) if artifact_dir is not None else None
        self.save_model = bool(save_model)
        self.description = description
        self.params = dict(params) if params else None
        self.goals: dict[str, str] = {}  # metric -> "max"/"min", as the framework tells it
        self._declared: set[tuple[str, str]] = set()  # (model, metric) goals this recorder saw declared
        #: The training the last ``train`` logged into, and the version it became (None until it finished).
        self.training_id: int | None = None
        self.version: VersionRecord | PendingVersion | None = None

    @property
    def uri(self) -> str | None:
        return self.life.uri

    def __getstate__(self) -> dict[str, Any]:
        return {"framework": self.framework, **{k: getattr(self, k) for k in self.SETTINGS}}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["framework"],
            model=state["model"],
            tracker=state["uri"],
            artifact_dir=state["artifact_dir"],
            save_model=state["save_model"],
            description=state["description"],
            tags=state["tags"],
            params=state["params"],
        )

    # --------------------------------------------------------------- a train
    def begin(self, owner: object, default_model: str, params: Mapping[str, Any], *, model_type: str | None,
              model_class: Any, interrupted: str) -> Training | None:  # fmt: skip
        """A ``train`` starts: end what an earlier, interrupted one left open, then join or start its training."""
        self.abandon(interrupted)
        life = self.life
        life.reset()
        self.training_id, self.version = None, None
        self.goals = {}
        merged = {**{str(k): to_jsonable(v) for k, v in params.items()}, **(self.params or {})}
        run = life.open(
            self.model or default_model,
            model_type=model_type,
            model_class=model_class,
            description=self.description,
            tags=self.tags,
        )
        if run is not None:
            if life.owned:
                life.watch(owner, interrupted)
            with guarded(f"{self.framework}: logging params"):
                log_new_params(run, merged)  # into an enclosing training: what its block recorded first wins
        self.training_id = run.id if run is not None else None
        return run

    def log_round(self, step: int, metrics: Mapping[str, float], goal_of: Callable[[str], str | None]) -> None:
        """One boosting round's eval results, at step = the round's index; ``goal_of(key)``: which way is better."""
        if len(self.goals) < len(metrics):
            for key in metrics:
                goal = self.goals.get(key) or goal_of(key)
                if goal is not None:
                    self.goals[key] = goal
        run = self.life.live
        if run is None:
            return
        with guarded(f"{self.framework}: logging round metrics"):
            for key, value in metrics.items():
                run.log_metric(key, value, step=step)

    def end(
        self,
        *,
        context: Mapping[str, Any],
        save: Callable[[Path], None] | None,
        suffix: str,
    ) -> VersionRecord | PendingVersion | None:
        """``train`` is done: the context (best iteration, importances), the saved booster, then the version."""
        run = self.life.live
        if run is None:
            return None
        if context:
            with guarded(f"{self.framework}: recording the best iteration and feature importance"):
                run.add_context(dict(context))
        if self.save_model and save is not None:
            with guarded(f"{self.framework}: saving the booster"):
                name = f"{safe_name(run.model_name)}-{run.id if run.id is not None else run.uuid}{suffix}"
                path = artifact_path(run, self.artifact_dir, name)
                partial = path.with_name(f".{path.name}.{os.getpid()}.partial{suffix}")
                try:
                    save(partial)
                    os.replace(partial, path)
                finally:
                    if partial.exists():
                        partial.unlink()
                run.log_artifact(path, name="model", flavor=self.framework)  # load_model gives the booster back
        wanted = {k: v for k, v in self.goals.items() if (run.model_name, k) not in self._declared}
        if wanted:
            with guarded(f"{self.framework}: declaring metric goals"):
                declare_goals(run.tracker, run.model_name, wanted)
                self._declared.update((run.model_name, k) for k in wanted)
        self.life.end_stage()
        self.version = self.life.end("finished")
        return self.version

    def fail(self, error: str) -> None:
        """``train`` raised where the callback could see it."""
        if self.life.live is not None:
            self.life.end("failed", error=error)

    def abandon(self, interrupted: str) -> None:
        """An owned training still open when the next ``train`` starts: its ``train`` never returned."""
        if self.life.live is not None and self.life.owned:
            self.life.end("failed", error=interrupted)
