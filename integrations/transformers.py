"""Hugging Face Transformers: ``Trainer(..., callbacks=[ModeltrailCallback("sst2-bert")])`` records each ``train()``.

Or, with no code beyond an import, ``TrainingArguments(report_to=["modeltrail"])``: importing this module adds
``"modeltrail"`` to Transformers' table of reporting integrations (``INTEGRATION_TO_CALLBACK``, the table the
Trainer reads ``report_to`` from when it is built), so the Trainer makes a ``ModeltrailCallback()`` itself. Its
settings then come from the environment (``MODELTRAIL_URI``) and the run (the model is named after
``hub_model_id``, else the model's class).

What one ``train()`` records (one training; a new version when it returns):

* params: the ``TrainingArguments`` (under their own names; folders and reporting settings in the context;
  credentials such as ``hub_token`` never stored) and the model config under ``config.`` (see
  ``_transformers_values``);
* every number of every ``Trainer.log`` call (losses, ``learning_rate``, ``grad_norm``, ``epoch``, the ``eval_*``
  of evaluations during training, the final ``train_*`` summary) at the global step, so the metric histories equal
  ``trainer.state.log_history`` entry by entry;
* each checkpoint ``on_save`` writes (its step and folder in ``context["checkpoints"]``; best checkpoint and metric
  at the end), and the checkpoint resumed from (``context["resumed_from"]``);
* the train dataset's identity where it can be known (``datasets.Dataset``, ``TensorDataset``, a list of examples);
* the model class, size and ``model_type`` (``language-model``, ``classifier``...) from its architecture;
* the final model (after ``load_best_model_at_end``), saved as ``Trainer.save_model`` saves it, into
  ``<artifact_dir>/<model>-<training id>/``, as the version's artifact ``model``.

After ``train()``, ``trainer.evaluate()`` and ``trainer.predict()`` (with labels) are recorded as evaluations of the
version the training made (``tracker.evaluations(model)``), on a dataset named ``<model>-<prefix>`` (``-eval``,
``-test``) with the data's identity where known. Inside ``with tracker.training(...)`` the Trainer logs into that
training instead, and evaluations after ``train()`` land there as metrics at the global step.

Failures: the Trainer calls no hook when ``train()`` raises; a training whose ``train()`` never reached
``on_train_end`` is recorded failed at the callback's next ``on_train_begin``, when the callback is collected, or
at exit. modeltrail's own failures warn once per hook and training goes on. Only the world's main process records.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modeltrail import _adapter as core

transformers = core.require("transformers", "transformers")

from transformers import Trainer, TrainerCallback  # noqa: E402
from transformers.integrations import integration_utils  # noqa: E402

from modeltrail._config import resolve_uri  # noqa: E402
from modeltrail._dataset import Dataset  # noqa: E402
from modeltrail._training import Training, active_training  # noqa: E402
from modeltrail._values import check_model_name, qualified_name  # noqa: E402

from ._transformers_values import argument_params, config_params, dataset_of, model_type_of, numbers  # noqa: E402

if TYPE_CHECKING:
    from modeltrail._records import EvaluationRecord, PendingVersion, VersionRecord
    from modeltrail._tracker import Tracker

__all__ = ["FRAMEWORK", "INTERRUPTED", "REPORT_TO", "ModeltrailCallback", "register_report_to"]

FRAMEWORK = "transformers"
REPORT_TO = "modeltrail"
INTERRUPTED = "Trainer.train stopped before on_train_end (it raised or was interrupted)"
_SETTINGS = (
    "model_name", "uri", "artifact_dir", "save_model", "log_dataset", "dataset_name", "model_type",
    "description", "tags", "extra_params", "evaluations",
)  # fmt: skip


class ModeltrailCallback(TrainerCallback, core.RecorderSettings):
    """Record each ``trainer.train()`` as a modeltrail training of ``model``.

    ``model`` names the model whose versions the trainings become (default: ``args.hub_model_id``, else the model's
    class name). ``tracker`` is the :class:`~modeltrail.Tracker` to record into, or ``uri`` a database URL (default:
    ``MODELTRAIL_URI``, then ``./modeltrail.db``). ``artifact_dir`` is where the final model is saved (default
    ``./artifacts/<model>/``); ``save_model=False`` records no model. ``evaluations=False`` leaves
    ``evaluate()``/``predict()`` after training unrecorded. After ``train()``, ``training_id`` and ``version`` say
    what was recorded and ``evaluations_made`` lists the evaluations recorded since.
    """

    _framework = FRAMEWORK
    _settings = _SETTINGS

    def __init__(
        self,
        model: str | None = None,
        *,
        uri: str | None = None,
        tracker: Tracker | None = None,
        artifact_dir: str | os.PathLike[str] | None = None,
        save_model: bool = True,
        log_dataset: bool = True,
        dataset_name: str | None = None,
        model_type: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        evaluations: bool = True,
    ) -> None:
        self.model_name = check_model_name(model) if model is not None else None
        # The URL is resolved now, so that a callback pickled into another process records into the same ledger.
        self._life = core.Lifecycle(FRAMEWORK, tracker if tracker is not None else resolve_uri(uri))
        self.artifact_dir = os.fspath(artifact_dir) if artifact_dir is not None else None
        self.save_model = save_model
        self.log_dataset = log_dataset
        self.dataset_name = dataset_name
        self.model_type = model_type
        self.description = description
        self.tags = dict(tags) if tags else None
        self.extra_params = dict(params) if params else None
        self.evaluations = evaluations
        self._reset()

    def _reset(self) -> None:
        self._in_train = False
        self._trained = False  # the last train() reached on_train_end
        self._checkpoints: list[dict[str, Any]] = []
        #: The training the last ``train()`` logged into, the version it became, the evaluations recorded since.
        self.training_id: int | None = None
        self.version: VersionRecord | PendingVersion | None = None
        self.evaluations_made: list[EvaluationRecord] = []

    def __repr__(self) -> str:
        return f"ModeltrailCallback(model={self.model_name!r}, training_id={self.training_id})"

    @property
    def training(self) -> Training | None:
        """The training the current or last ``train()`` logged into."""
        return self._life.training

    def __enter__(self) -> ModeltrailCallback:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        """``with callback: trainer.train()``: a ``train()`` that raises is recorded failed with its own error, at
        once (the Trainer calls no hook then)."""
        if exc is not None and self._in_train:
            self._in_train = False
            with core.guarded("transformers: recording the failed train()"):  # never in place of the user's error
                self._life.end("failed", error=f"{exc_type.__name__ if exc_type else 'Error'}: {exc}")

    # ---------------------------------------------------------------- hooks
    @core.guard("transformers: on_train_begin")
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self._end_previous()  # the previous train() of this callback raised: it never reached on_train_end
        self._life.reset()
        self._reset()
        self._in_train = True
        trainer = _trainer_in_callers()
        self._start(args, state, model, trainer, kwargs.get("train_dataloader"))

    @core.guard("transformers: on_log")
    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        run = self._target()
        if run is None:
            return  # after an owned train(): evaluate()'s log arrives again in on_evaluate, as an evaluation
        step = int(state.global_step)
        for key, value in numbers(_as_logged(state, logs)).items():
            run.log_metric(key, value, step)

    @core.guard("transformers: on_save")
    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        run = self._life.live
        if not state.is_world_process_zero or run is None or not self._in_train:
            return
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        self._checkpoints.append({"step": int(state.global_step), "path": os.path.abspath(folder)})
        run.add_context({"checkpoints": list(self._checkpoints)})

    @core.guard("transformers: on_train_end")
    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not self._in_train:
            return
        self._in_train = False
        run = self._life.live
        if run is None:
            return
        self._trained = True
        with core.guarded("transformers: recording the best checkpoint"):
            best = {
                "best_model_checkpoint": state.best_model_checkpoint,
                "best_metric": state.best_metric,
                "metric_for_best_model": args.metric_for_best_model,
                "global_step": int(state.global_step),
            }
            run.add_context({"trainer_state": {k: v for k, v in best.items() if v is not None}})
        if self.save_model and model is not None:
            with core.guarded("transformers: saving the model"):
                self._save_model(run, args, model, kwargs.get("processing_class"))
        self._life.end_stage()
        if self._life.owned:
            self.version = self._life.end("finished")
        else:
            run.flush()  # the enclosing ``with tracker.training(...)`` ends it

    @core.guard("transformers: on_evaluate")
    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and not self._in_train:
            self._after_train("evaluate", metrics, kwargs.get("eval_dataloader"))

    @core.guard("transformers: on_predict")
    def on_predict(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self._in_train:
            return
        run = self._target()
        if run is not None:  # the Trainer does not log predict()'s metrics: the training gets them here
            for key, value in numbers(metrics).items():
                run.log_metric(key, value, int(state.global_step))
            return
        self._after_train("predict", metrics, kwargs.get("eval_dataloader"))

    # ------------------------------------------------------------- internals
    def _target(self) -> Training | None:
        """Where a Trainer log goes: the training during ``train()``, else a training still open around the Trainer."""
        if self._in_train:
            return self._life.live
        active = active_training()
        if active is not None and active.status == "running":
            return active
        return None

    def _start(self, args: Any, state: Any, model: Any, trainer: Any, loader: Any) -> None:
        params, context = self._params(args, model)
        life = self._life
        if life.join(params) is None:
            name = self.model_name or _default_name(args, model)
            life.start(
                name,
                model_type=self.model_type or model_type_of(model),
                description=self.description,
                params=params,
                dataset=self._dataset(trainer, loader, name) if self.log_dataset else None,
                tags=self.tags,
            )
            life.watch(self, INTERRUPTED)
        run = life.training
        if run is None:
            return
        resumed = _resumed_from(trainer)
        if resumed is not None:
            context["resumed_from"] = {"checkpoint": os.path.abspath(resumed), "global_step": int(state.global_step)}
        with core.guarded("transformers: recording the run context"):
            run.add_context(context)
        self.training_id = run.id

    def _params(self, args: Any, model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        params: dict[str, Any] = {}
        context: dict[str, Any] = {}
        with core.guarded("transformers: reading the training arguments"):
            arguments, run_settings = argument_params(args)
            params.update(arguments)
            context["training_arguments"] = run_settings
        with core.guarded("transformers: reading the model config"):
            config, about = config_params(getattr(model, "config", None))
            params.update(config)
            context["model_config"] = about
        with core.guarded("transformers: reading the model"):
            context["model_class"] = qualified_name(type(model))
            count = getattr(model, "num_parameters", None)
            if callable(count):
                context["num_parameters"] = {"total": int(count()), "trainable": int(count(only_trainable=True))}
        params.update(self.extra_params or {})
        return params, context

    def _dataset(self, trainer: Any, loader: Any, name: str) -> Dataset | None:
        """The train dataset as the user gave it to the Trainer (else what its dataloader holds), where knowable."""
        with core.guarded("transformers: fingerprinting the train dataset"):
            data = getattr(trainer, "train_dataset", None) if trainer is not None else None
            if data is None:
                data = getattr(loader, "dataset", None)
            return dataset_of(data, self.dataset_name or f"{name}-train")
        return None

    def _save_model(self, run: Training, args: Any, model: Any, processing_class: Any) -> None:
        folder = core.artifact_path(run, self.artifact_dir, f"{core.safe_name(run.model_name)}-{run.id}")
        trainer = _trainer_in_callers()
        if trainer is not None and getattr(args, "world_size", 1) == 1 and not getattr(args, "push_to_hub", False):
            trainer.save_model(os.fspath(folder))  # what the user's own save_model writes (tokenizer included)
        else:
            model.save_pretrained(os.fspath(folder))
            if hasattr(processing_class, "save_pretrained"):
                processing_class.save_pretrained(os.fspath(folder))
        run.log_artifact(folder, name="model", role="model")  # loads as its folder: ``from_pretrained(path)``

    def _after_train(self, kind: str, metrics: Any, loader: Any) -> None:
        """``evaluate()``/``predict()`` outside ``train()``: an evaluation of the version the last training made."""
        values = numbers(metrics)
        if not values or not self.evaluations:
            return
        if self._target() is not None:
            return  # an open training: evaluate()'s log already went there (predict()'s in on_predict)
        version = self.version
        if not version:  # no train() yet, or its end is spooled (a PendingVersion)
            why = "the version is not made yet (the database is away)" if self._trained else "there is no version yet"
            self._life.tell_once(
                f"{kind}-unversioned", f"trainer.{kind}() is not recorded as an evaluation: {why}", stacklevel=5
            )
            return
        prefix = _prefix(values, "eval" if kind == "evaluate" else "test")
        name = f"{version.model}-{prefix}"
        data = getattr(loader, "dataset", None)
        dataset = dataset_of(data, name) if self.log_dataset else None
        record = self.tracker.evaluate(
            version.model,
            version=version.number,
            dataset=dataset if dataset is not None else name,
            metrics=values,
            description=f"trainer.{kind}() after training {version.training_id}",
        )
        self.evaluations_made.append(record)

    def _end_previous(self) -> None:
        """An owned training still open at the next ``train()``: its ``train()`` raised (no on_train_end)."""
        if self._life.live is not None and self._life.owned and not self._trained:
            self._life.end("failed", error=INTERRUPTED)


# ------------------------------------------------------------------- helpers
def _as_logged(state: Any, logs: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """What ``Trainer.log`` logged, as its ``log_history`` entry holds it.

    The ``logs`` callbacks are handed is one dict passed along the list, and the Trainer's own printer callback
    pops ``total_flos`` from it: a callback added after that one (``trainer.add_callback``, autolog) would miss it.
    The history entry, appended just before the callbacks run, is the copy nothing has touched.
    """
    entry = state.log_history[-1] if getattr(state, "log_history", None) else None
    if isinstance(entry, Mapping) and entry.get("step") == state.global_step and all(k in entry for k in logs or {}):
        return {k: v for k, v in entry.items() if k != "step"}
    return logs or {}


def _prefix(metrics: Mapping[str, Any], default: str) -> str:
    """``metric_key_prefix`` of an evaluate()/predict() call: the part before ``_runtime`` of its timing key."""
    for key in metrics:
        if key.endswith("_runtime"):
            return key[: -len("_runtime")] or default
    return default


def _default_name(args: Any, model: Any) -> str:
    hub = getattr(args, "hub_model_id", None)
    return check_model_name(hub) if isinstance(hub, str) and hub else type(model).__name__


def _is_trainer(frame: Any) -> Any:
    candidate = frame.f_locals.get("self")
    return candidate if isinstance(candidate, Trainer) else None


def _trainer_in_callers() -> Any:
    """The Trainer whose loop called the hook: callbacks are handed the model and data, never the Trainer itself."""
    return core.find_in_callers(_is_trainer, depth=12)


def _resumed_from(trainer: Any) -> str | None:
    """``train(resume_from_checkpoint=...)``'s checkpoint folder, read from the training loop's frame."""
    if trainer is None:
        return None

    def resumed(frame: Any) -> Any:
        if frame.f_locals.get("self") is trainer and "resume_from_checkpoint" in frame.f_locals:
            value = frame.f_locals["resume_from_checkpoint"]
            return value if isinstance(value, (str, os.PathLike)) else None
        return None

    found = core.find_in_callers(resumed, depth=12)
    return os.fspath(found) if found is not None else None


def register_report_to(name: str = REPORT_TO) -> None:
    """Let ``TrainingArguments(report_to=[name])`` make a :class:`ModeltrailCallback` (done when this module loads).

    Transformers builds its reporting callbacks from the ``INTEGRATION_TO_CALLBACK`` table when a Trainer is made;
    the table is a plain dict read at that moment, so an entry added here is honoured like its own.
    """
    integration_utils.INTEGRATION_TO_CALLBACK[name] = ModeltrailCallback


register_report_to()
