"""Recording without changing training code.

* ``@modeltrail.autolog(model="churn-rf")`` on a training function: its bound arguments
  become hyperparameters (data arrays by type and shape, never by value), a returned
  mapping of numbers becomes metrics, and framework fits inside the call are recorded
  into that same training.
* ``modeltrail.enable_autolog()`` / ``disable_autolog()`` patch, and cleanly restore,
  scikit-learn estimators' ``fit``, ``keras.Model.fit``, Lightning's ``Trainer.fit``,
  Transformers' ``Trainer.train``, ``xgboost.train`` and ``lightgbm.train`` (which their
  scikit-learn wrappers call). A framework imported later is patched at import time, so
  enabling autolog never imports torch or keras by itself. Nested fits (pipeline steps,
  search folds, a fit inside a recorded fit) are recorded once, by the outermost. Each
  patch only hands the framework its adapter's callback (logger) when the user gave none.
* ``modeltrail run train.py [args...]`` runs an unmodified script with autolog enabled.

Modeltrail's own failures warn once and the user's code runs on; the user's own
exceptions propagate unchanged. ``tracker=`` (a :class:`~modeltrail.Tracker`) records
into that ledger; otherwise ``uri`` names it. The lifecycle is :mod:`modeltrail._adapter`'s,
the patch bookkeeping ``_patching``'s; each framework's fit is recorded by its own adapter.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import inspect
import sys
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from modeltrail._adapter import Lifecycle, describe, describe_arguments, find_in_callers, guarded, numbers_in, running

from . import _patching
from ._patching import run_script

if TYPE_CHECKING:
    from types import FrameType

    from modeltrail._tracker import Tracker

__all__ = ["autolog", "describe", "describe_arguments", "disable_autolog", "enable_autolog", "numbers_in", "run_script"]

F = TypeVar("F", bound=Callable[..., Any])

#: Set while a patched fit runs in this thread/task: fits nested inside it are left alone.
_IN_PATCHED_FIT: contextvars.ContextVar[bool] = contextvars.ContextVar("modeltrail_autolog_fit", default=False)

_settings = _patching.settings


# ------------------------------------------------------------------ decorator
@overload
def autolog(fn: F) -> F: ...
@overload
def autolog(
    fn: None = None,
    *,
    model: str | None = None,
    uri: str | None = None,
    tracker: Tracker | None = None,
    framework: str | None = None,
    model_type: str | None = None,
) -> Callable[[F], F]: ...
def autolog(
    fn: F | None = None,
    *,
    model: str | None = None,
    uri: str | None = None,
    tracker: Tracker | None = None,
    framework: str | None = None,
    model_type: str | None = None,
) -> F | Callable[[F], F]:
    """Record each call of the decorated training function as one training of ``model``."""

    def decorate(func: F) -> F:
        signature = inspect.signature(func)
        name = model or func.__name__

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            life = Lifecycle("autolog", tracker if tracker is not None else uri)
            with guarded("autolog: start training"):
                params = describe_arguments(signature, args, kwargs)
                life.start(name, train_stage=False, framework=framework, model_type=model_type, params=params)
            run = life.training
            if run is None:
                return func(*args, **kwargs)
            with _patching.scope(uri=uri, tracker=tracker, model=name), running(run, "autolog"):
                result = func(*args, **kwargs)
                with guarded("autolog: record result"):
                    run.log_metrics(numbers_in(result))
            return result

        return wrapper  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate


# --------------------------------------------------------------------- patches
def enable_autolog(
    uri: str | None = None,
    *,
    tracker: Tracker | None = None,
    model: str | None = None,
    sklearn: bool = True,
    keras: bool = True,
    lightning: bool = True,
    transformers: bool = True,
    xgboost: bool = True,
    lightgbm: bool = True,
) -> None:
    """Record every fit of these frameworks from now on (until :func:`disable_autolog`); ``False`` leaves one alone."""
    _patching.enable(
        uri=uri, tracker=tracker, model=model, sklearn=sklearn, keras=keras, lightning=lightning,
        transformers=transformers, xgboost=xgboost, lightgbm=lightgbm,
    )  # fmt: skip


def disable_autolog() -> None:
    """Restore every patched method; fits are no longer recorded."""
    _patching.disable()


def _model_name(default: str) -> str:
    return str(_settings.get("model") or default)


def _ledger() -> dict[str, Any]:
    """Where patched fits record: the ``uri`` and ``tracker`` autolog was given."""
    return {"uri": _settings.get("uri"), "tracker": _settings.get("tracker")}


#: ``run(original, args, kwargs)`` calls ``original`` (a method: ``args[0]`` is ``self``) and records that call.
Run = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]


def _recorded(
    framework: str, run: Run, skip: Callable[[tuple[Any, ...], dict[str, Any]], bool] | None = None
) -> Callable[..., Any]:
    """A patched ``fit`` or ``train``: ``run`` records it; nested fits and ``skip(args, kwargs)`` pass through."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def fit(*args: Any, **kwargs: Any) -> Any:
            # A fit inside a recorded fit, after disable_autolog(), or of a framework turned off since: as it is.
            if (
                _IN_PATCHED_FIT.get()
                or not _patching.enabled()
                or not _settings.get(framework)
                or (skip is not None and skip(args, kwargs))
            ):
                return original(*args, **kwargs)
            token = _IN_PATCHED_FIT.set(True)
            try:
                return run(original, args, kwargs)
            finally:
                _IN_PATCHED_FIT.reset(token)

        return fit

    return make


def _with_callback(original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], callback: Any) -> Any:
    """Call ``original`` inside ``callback`` (None: as it is): a call that raises is recorded failed with its error."""
    with callback if callback is not None else contextlib.nullcontext():
        return original(*args, **kwargs)


def _adapter_callback(adapter: str, given: list[Any], make: Callable[[Any], Any]) -> tuple[Any, bool]:
    """The adapter's callback among ``given`` (the user's own), else ``make(adapter module)``; and whether it is new.

    (None, False) when the adapter cannot be imported or built: that warns once and the call runs as it is.
    """
    with guarded(f"autolog: {adapter} callback"):
        module = importlib.import_module(f"{__package__}.{adapter}")
        for callback in given:
            if isinstance(callback, module.ModeltrailCallback):
                return callback, False
        return make(module), True
    return None, False


def _with_callbacks_argument(adapter: str, make: Callable[[Any, tuple[Any, ...]], Any]) -> Run:
    """A ``run`` for a call taking ``callbacks=``: the adapter's callback is added there unless the user gave one."""

    def run(original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        given = list(kwargs.get("callbacks") or [])
        callback, new = _adapter_callback(adapter, given, lambda module: make(module, args))
        if new:
            kwargs["callbacks"] = [*given, callback]
        return _with_callback(original, args, kwargs, callback)

    return run


def _patch_sklearn() -> None:
    from sklearn.base import BaseEstimator
    from sklearn.utils import all_estimators

    from . import sklearn as adapter

    def run(original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self, args = args[0], args[1:]
        X = args[0] if args else kwargs.get("X")
        y = args[1] if len(args) > 1 else kwargs.get("y")
        fit = functools.partial(original, self, *args, **kwargs)
        if adapter.is_preprocessing(self):  # a scaler's fit belongs to the training of the model that follows
            result = adapter.record_preprocessing(self, fit, X)
            with guarded("autolog: recording the preprocessing"):
                _patching.preprocessing_waits()
            return result
        model = _model_name(adapter.default_model_name(self))
        params = _fit_keywords(original, self, args, kwargs)
        return adapter.record_fit(self, fit, X, y, model=model, fit_params=params, **_ledger())

    def skip(adapter: Any) -> bool:
        # A fit a boosting library's wrapper makes for itself (LGBMClassifier's LabelEncoder) is its own business.
        return bool(adapter.fit_in_progress() or find_in_callers(_boosting_wrapper_frame, depth=6))

    # An estimator often inherits fit (RandomForestClassifier from BaseForest): patch where it is defined. A
    # fit_transform of its own (PCA's, ColumnTransformer's) may not call fit: patched too.
    owners = {
        (klass, method)
        for _, cls in all_estimators()
        for klass in cls.__mro__
        for method in ("fit", "fit_transform")
        if method in klass.__dict__ and issubclass(klass, BaseEstimator)
    }
    for owner, method in sorted(owners, key=lambda k: (f"{k[0].__module__}.{k[0].__qualname__}", k[1])):
        _patching.replace(owner, method, _recorded("sklearn", run, lambda _args, _kwargs: skip(adapter)))


def _boosting_wrapper_frame(frame: FrameType) -> bool:
    return str(frame.f_globals.get("__name__", "")) in ("lightgbm.sklearn", "xgboost.sklearn")


def _fit_keywords(
    original: Callable[..., Any], self: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The fit's arguments after ``self``, ``X`` and ``y``, by name (``sample_weight`` given by position too)."""
    try:
        signature = inspect.signature(original)
        bound = signature.bind_partial(self, *args, **kwargs).arguments
    except (TypeError, ValueError):
        return dict(kwargs)
    first = list(signature.parameters)[:3]
    out: dict[str, Any] = {}
    for name, value in bound.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif name not in first and kind is not inspect.Parameter.VAR_POSITIONAL:
            out[name] = value
    return out


def _patch_keras() -> None:
    import keras

    def make(adapter: Any, args: tuple[Any, ...]) -> Any:
        model = args[0]
        default = type(model).__name__ if adapter.is_auto_name(model.name, type(model)) else model.name
        return adapter.ModeltrailCallback(model=_model_name(default), **_ledger())

    # Callbacks given by position (self, x, y, batch_size, epochs, verbose, callbacks): left as they are.
    run = _with_callbacks_argument("keras", make)
    _patching.replace(keras.Model, "fit", _recorded("keras", run, lambda args, _kwargs: len(args) >= 7))


def _patch_lightning() -> None:
    from lightning.pytorch import Trainer

    def run(original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self = args[0]
        previous = None
        with guarded("autolog: lightning logger"):
            from .lightning import ModeltrailLogger

            if not any(isinstance(logger, ModeltrailLogger) for logger in self.loggers):
                module = args[1] if len(args) > 1 else kwargs.get("model")
                previous = list(self.loggers)
                self.loggers = [*previous, ModeltrailLogger(_model_name(type(module).__name__), **_ledger())]
        try:
            return original(*args, **kwargs)
        finally:
            if previous is not None:
                self.loggers = previous  # one logger per fit: a second fit gets a fresh one

    _patching.replace(Trainer, "fit", _recorded("lightning", run))


def _patch_transformers() -> None:
    from transformers import Trainer

    def run(original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        trainer = args[0]

        def make(adapter: Any) -> Any:
            callback = adapter.ModeltrailCallback(model=_settings.get("model"), **_ledger())
            trainer.add_callback(callback)  # kept after train(): evaluate() and predict() are the version's
            owner = weakref.ref(trainer)  # until disable_autolog(), which takes it off again
            _patching.on_disable(lambda: (t := owner()) is not None and t.remove_callback(callback))
            return callback

        callback, _ = _adapter_callback("transformers", list(trainer.callback_handler.callbacks), make)
        return _with_callback(original, args, kwargs, callback)

    _patching.replace(Trainer, "train", _recorded("transformers", run))


def _patch_train_function(module: Any, adapter: str, positional: int) -> None:
    """Patch ``module.train`` and the name its scikit-learn wrappers call it by (``module.sklearn.train``).

    Callbacks given by position (argument index ``positional``) are the user's list, left as it is. A
    wrapper's fit names the model after its class (``LGBMClassifier``), as a scikit-learn fit does.
    """

    def make(kind: Any, args: tuple[Any, ...]) -> Any:
        return kind.ModeltrailCallback(_model_name(_wrapper_of(adapter) or adapter), **_ledger())

    def skip(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        return len(args) > positional or _in_sklearn_fit()  # a fold of cross_val_score is not a training

    run = _with_callbacks_argument(adapter, make)
    for owner in (module, getattr(module, "sklearn", None)):
        if owner is not None and callable(getattr(owner, "train", None)):
            _patching.replace(owner, "train", _recorded(adapter, run, skip))


def _wrapper_of(package: str) -> str | None:
    """The class of the scikit-learn wrapper (``XGBClassifier``...) whose ``fit`` called ``package``'s train."""

    def wrapper_fit(frame: FrameType) -> str | None:
        if frame.f_code.co_name == "fit" and str(frame.f_globals.get("__name__", "")) == f"{package}.sklearn":
            owner = frame.f_locals.get("self")
            return type(owner).__name__ if owner is not None else None
        return None

    return find_in_callers(wrapper_fit, depth=12)


def _in_sklearn_fit() -> bool:
    """A scikit-learn fit recorded elsewhere (tracked, autologged) or a cross-validation fold is running."""
    adapter = sys.modules.get(f"{__package__}.sklearn")
    return adapter is not None and bool(adapter.fit_in_progress())


def _patch_xgboost() -> None:
    import xgboost

    # xgboost.train(params, dtrain, num_boost_round, evals, obj, maximize, early_stopping_rounds, evals_result,
    # verbose_eval, xgb_model, callbacks): keyword-only, yet still taken by position (with a FutureWarning).
    _patch_train_function(xgboost, "xgboost", positional=10)


def _patch_lightgbm() -> None:
    import lightgbm

    # lightgbm.train(params, train_set, num_boost_round, valid_sets, valid_names, feval, init_model,
    # keep_training_booster, callbacks)
    _patch_train_function(lightgbm, "lightgbm", positional=8)


def autolog_enabled() -> bool:
    return _patching.enabled()


_iter_patches = _patching.patched
_patching.PATCHERS.update(
    sklearn=_patch_sklearn, keras=_patch_keras, lightning=_patch_lightning, transformers=_patch_transformers,
    xgboost=_patch_xgboost, lightgbm=_patch_lightgbm,
)  # fmt: skip
