"""Optuna: ``study.optimize(objective, callbacks=[ModeltrailCallback()])`` records every trial as a training.

One model per study (named after the study unless ``model=`` says otherwise); each trial is one of its trainings:

* params: the trial's params (``trial.params``), plus ``params=`` of your own;
* metrics: the objective's value as ``value`` (``values_0``, ``values_1``... for several objectives, or the names
  given to ``study.set_metric_names``), and the values the objective reported with ``trial.report(v, step)`` as
  the history of ``intermediate_value`` at their step. Each name's goal is declared once from the study's
  direction (``set_metric_goal``), so ``modeltrail leaderboard <study> --metric value`` ranks the trials' versions;
* context ``optuna.*``: study, trial number, Optuna's state, start and completion times, duration, user attributes;
* status: a complete trial is ``finished``, a pruned one ``pruned`` (``modeltrail trainings <study> --status
  pruned``, or ``--where "status = 'pruned'"``), a failed one ``failed``.

Versions: a complete trial becomes a version only when it is the study's best when it ends (for several
objectives: when it is on the Pareto front), so the registry holds one version per improvement and its latest
version is the best trial so far; every other trial is a finished training without a version, listed and
searchable like any other. In several processes against one database (Optuna's RDB storage may share it) each
process records its own trials and asks the study, which Optuna keeps in that storage, whether a trial is the
best. Within one process (``n_jobs`` threads) asking and finishing are one step, so versions come in the order
trials became the best; across processes two trials ending at the same moment may both become versions, in the
order they reached the ledger.

Intermediate values: Optuna calls callbacks only after a trial, so by default they are recorded at its end from
``trial.intermediate_values`` and the training's start and duration are the recording's (the trial's own are in
the context). ``study.optimize(cb.track(objective), callbacks=[cb])`` records them live instead: the training
starts with the trial (its real start and duration), ``trial.report`` is recorded as it is called, the
training is the active one while the objective runs (an XGBoost, LightGBM, Keras... adapter inside it logs into
it), and a trial that raises is recorded failed with its error (pruned for ``TrialPruned``). Keep ``cb`` in
``callbacks=``: it decides the version; a tracked trial that never reaches it is recorded failed at exit.

modeltrail's own failures warn once and the study goes on; your objective's exceptions propagate unchanged.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from modeltrail._adapter import guarded, log_new_params, require, unwatch, watch
from modeltrail._training import _active
from modeltrail._values import check_model_name, check_tags, encode_params

optuna = require("optuna", "optuna")

if TYPE_CHECKING:
    import weakref

    from modeltrail._records import PendingVersion, VersionRecord
    from modeltrail._tracker import Tracker
    from modeltrail._training import Training

FRAMEWORK = "optuna"
INTERMEDIATE = "intermediate_value"
NEVER_TOLD = "the trial ended without reaching ModeltrailCallback: pass it to study.optimize(callbacks=[...])"
_TrialState: Any = optuna.trial.TrialState
#: Held from asking the study whether a trial is its best to handing its finish to the writer: without it, of two
#: threads' trials ending together, the better one's version could be numbered first and the worse one's last.
_deciding = threading.Lock()


def _fresh_lock() -> None:
    global _deciding
    _deciding = threading.Lock()  # a fork while a thread held it would leave the child's copy held forever


os.register_at_fork(after_in_child=_fresh_lock)


class _Live:
    """A trial :meth:`ModeltrailCallback.track` is recording while it runs."""

    def __init__(self, run: Training, finalizer: weakref.finalize[Any, Any] | None) -> None:
        self.run = run
        self.finalizer = finalizer
        self.steps: set[int] = set()  # steps of trial.report already recorded (Optuna keeps the first per step)


class ModeltrailCallback:
    """Record each trial of ``study.optimize`` as a training; the study's best trials become versions.

    ``tracker`` is the :class:`~modeltrail.Tracker` to record into, or ``uri`` a database URL (default:
    ``MODELTRAIL_URI``, then ``./modeltrail.db``); the callback pickles as its settings, so worker processes
    may be given it. ``model`` names the model (default: the study's name); ``model_type`` says what the trials
    train (Optuna cannot tell). The model name, ``params`` and ``tags`` are checked here (a ``ValidationError``
    at the call). After each trial, ``training_id`` and ``version`` tell what the last one became.
    """

    SETTINGS = ("model", "uri", "model_type", "description", "tags", "params")

    def __init__(
        self,
        model: str | None = None,
        uri: str | Tracker | None = None,
        *,
        tracker: Tracker | None = None,
        model_type: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = check_model_name(model) if model is not None else None
        encode_params(params or {})
        self.tags = check_tags(tags) or None
        given = tracker if tracker is not None else uri
        self._tracker = None if given is None or isinstance(given, str) else given
        self.uri: str | None = given if given is None or isinstance(given, str) else given.uri
        self.model_type = model_type
        self.description = description
        self.params = dict(params) if params else None
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[tuple[str, int], _Live] = {}
        self._goals: set[str] = set()  # models whose metric goals this callback declared
        self.training_id: int | None = None
        self.version: VersionRecord | PendingVersion | None = None

    def __repr__(self) -> str:
        return f"ModeltrailCallback(model={self.model!r}, training_id={self.training_id})"

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.SETTINGS}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        for key in self.SETTINGS:
            setattr(self, key, state[key])
        self._tracker = None
        self._reset()

    @property
    def tracker(self) -> Tracker:
        """The Tracker this callback records into: the one it was given, or one made from ``uri``."""
        if self._tracker is None:
            from modeltrail._tracker import Tracker

            self._tracker = Tracker(self.uri)
        return self._tracker

    # ------------------------------------------------------- after a trial
    def __call__(self, study: Any, trial: Any) -> None:
        """Optuna's callback: record the trial that just ended."""
        with guarded("optuna: recording the trial"):
            self._record(study, trial)

    def _record(self, study: Any, trial: Any) -> None:
        with self._lock:
            live = self._live.pop((study.study_name, trial.number), None)
        if live is not None:
            unwatch(live.finalizer, live.run)
            run = live.run
            if run.status != "running":
                return  # the tracked objective raised: recorded failed or pruned already
        else:
            run = self._start(study)
        state = trial.state
        with guarded("optuna: trial params"):
            log_new_params(run, {**trial.params, **(self.params or {})})
        with guarded("optuna: intermediate values"):
            done = live.steps if live is not None else set()
            for step, value in sorted(trial.intermediate_values.items()):
                if step not in done:
                    run.log_metric(INTERMEDIATE, value, step=step)
        if state == _TrialState.COMPLETE and trial.values is not None:
            with guarded("optuna: trial values"):
                run.log_metrics(dict(zip(_value_names(study), trial.values, strict=True)))
        with guarded("optuna: trial context"):
            run.add_context(_context(study, trial))
        self._declare_goals(study, run.model_name)
        self.training_id = run.id
        if state == _TrialState.COMPLETE:
            with guarded("optuna: writing the trial's points"):
                run.flush()  # before the lock: the other threads then wait on the decision only, not on the writes
            with _deciding:
                self.version = run.finish("finished", make_version=_is_best(study, trial))
        elif state == _TrialState.PRUNED:
            self.version = run.finish("pruned")
        else:
            self.version = run.finish("failed", error=f"optuna trial {trial.number} ended {state.name}")

    def _start(self, study: Any) -> Training:
        return self.tracker.training(
            self.model or study.study_name,
            framework=FRAMEWORK,
            model_type=self.model_type,
            description=self.description,
            tags=self.tags,
        )

    def _declare_goals(self, study: Any, model: str) -> None:
        """Each value's goal from the study's direction, once per model (a goal you declared is kept)."""
        if model in self._goals:
            return
        self._goals.add(model)
        with guarded("optuna: declaring metric goals"):
            names = _value_names(study)
            goals = [("max" if d == optuna.study.StudyDirection.MAXIMIZE else "min") for d in study.directions]
            wanted = dict(zip(names, goals, strict=True))
            if len(names) == 1:
                wanted[INTERMEDIATE] = goals[0]
            declared = {g.metric for g in self.tracker.metric_goals(model)}
            for metric, goal in wanted.items():
                if metric not in declared:
                    self.tracker.set_metric_goal(model, metric, goal, set_by="optuna")

    # ------------------------------------------------------ during a trial
    def track(self, objective: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``objective`` recorded live: ``study.optimize(cb.track(objective), callbacks=[cb])``."""

        @functools.wraps(objective)
        def tracked(trial: Any) -> Any:
            live = self._begin_trial(trial)
            if live is None:
                return objective(trial)
            token = _active.set(live.run)  # adapters inside the objective log into the trial's training
            try:
                return objective(trial)
            except optuna.TrialPruned:
                self._end_early(trial, live, "pruned", None)
                raise
            except BaseException as e:
                self._end_early(trial, live, "failed", f"{type(e).__name__}: {e}")
                raise
            finally:
                _active.reset(token)

        return tracked

    def _begin_trial(self, trial: Any) -> _Live | None:
        with guarded("optuna: starting the trial's training"):
            study = trial.study
            live = _Live(self._start(study), None)
            # Kept in ``_live`` until the callback takes it: if it never does, exit records the trial failed.
            live.finalizer = watch(live, live.run, NEVER_TOLD, label="trial", thread="modeltrail-optuna")
            with self._lock:
                self._live[(study.study_name, trial.number)] = live
            report = trial.report

            def recorded_report(value: float, step: int) -> None:
                report(value, step)
                if live.run.status == "running" and step not in live.steps:
                    live.steps.add(step)
                    with guarded("optuna: recording trial.report"):
                        live.run.log_metric(INTERMEDIATE, value, step=step)

            trial.report = recorded_report
            return live
        return None

    def _end_early(self, trial: Any, live: _Live, status: str, error: str | None) -> None:
        """The objective raised: the trial ends here, without a version (the callback may never be called)."""
        with guarded("optuna: recording the trial's end"):
            unwatch(live.finalizer, live.run)
            live.run.add_context(
                {"optuna.study": trial.study.study_name, "optuna.trial": trial.number, "optuna.pid": os.getpid()}
            )
            log_new_params(live.run, {**trial.params, **(self.params or {})})
            self.training_id = live.run.id
            self.version = live.run.finish(status, error=error)


def _value_names(study: Any) -> list[str]:
    """The objective values' metric names: ``set_metric_names``'s, else ``value`` / ``values_<i>`` as Optuna's
    ``trials_dataframe``."""
    names = study.metric_names
    if names:
        return [str(n) for n in names]
    count = len(study.directions)
    return ["value"] if count == 1 else [f"values_{i}" for i in range(count)]


def _is_best(study: Any, trial: Any) -> bool:
    """Whether the trial is, now, the study's best (one objective) or on its Pareto front (several)."""
    if len(study.directions) == 1:
        return bool(study.best_trial.number == trial.number)
    return any(t.number == trial.number for t in study.best_trials)


def _context(study: Any, trial: Any) -> dict[str, Any]:
    return {
        "optuna.study": study.study_name,
        "optuna.trial": trial.number,
        "optuna.state": trial.state.name,
        "optuna.datetime_start": trial.datetime_start.isoformat() if trial.datetime_start else None,
        "optuna.datetime_complete": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
        "optuna.duration_s": trial.duration.total_seconds() if trial.duration is not None else None,
        "optuna.user_attrs": dict(trial.user_attrs),
        "optuna.pid": os.getpid(),
    }


__all__ = ["INTERMEDIATE", "ModeltrailCallback"]
