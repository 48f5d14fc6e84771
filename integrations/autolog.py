"""Recording without changing training code.

* ``@modeltrail.autolog(model="churn-rf")`` on a training function: its bound arguments
  become hyperparameters (data arrays by type and shape, never by value), a returned
  mapping of numbers becomes metrics, and framework fits inside the call are recorded
  into that same training.
* ``modeltrail.enable_autolog()`` / ``disable_autolog()`` patch, and cleanly restore,
  scikit-learn estimators' ``fit``, ``keras.Model.fit`` and Lightning's ``Trainer.fit``.
  A framework imported later is patched at import time, so enabling autolog never
  imports torch or keras by itself. Nested fits (pipeline steps, search folds, a fit
  inside a recorded fit) are recorded once, by the outermost.
* ``modeltrail run train.py [args...]`` runs an unmodified script with autolog enabled.

Modeltrail's own failures warn once and the user's code runs on; the user's own
exceptions propagate unchanged. ``tracker=`` (a :class:`~modeltrail.Tracker`) records
into that ledger; otherwise ``uri`` names it. The lifecycle is :mod:`modeltrail._adapter`'s,
the patch bookkeeping ``_patching``'s; each framework's fit is recorded by its own adapter.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import runpy
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, overload

from modeltrail._adapter import Lifecycle, describe, describe_arguments, guarded, numbers_in, running

from . import _patching

if TYPE_CHECKING:
    from modeltrail._tracker import Tracker

__all__ = ["autolog", "describe", "describe_arguments", "disable_autolog", "enable_autolog", "numbers_in"]

F = TypeVar("F", bound=Callable[..., Any])

#: Set while a patched fit runs in this thread/task: fits nested inside it are left alone.
_IN_PATCHED_FIT: contextvars.ContextVar[bool] = contextvars.ContextVar("modeltrail_autolog_fit", default=False)

_lock = threading.RLock()
_settings: dict[str, Any] = {}
_patched_frameworks: set[str] = set()
_finder: _patching.PatchOnImport | None = None
_enabled_depth = 0  # enable_autolog() calls (explicit ones count as permanent)
#: The module whose import patches each framework.
_MODULES = {"sklearn": "sklearn.base", "keras": "keras", "lightning": "lightning.pytorch"}


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
            with _autolog_scope(uri=uri, tracker=tracker, model=name), running(run, "autolog"):
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
) -> None:
    """Record every fit of scikit-learn, Keras and Lightning from now on (until :func:`disable_autolog`)."""
    global _enabled_depth
    with _lock:
        _settings.update(uri=uri, tracker=tracker, model=model, sklearn=sklearn, keras=keras, lightning=lightning)
        _enabled_depth = max(_enabled_depth, 0) + 1
        _install()


def disable_autolog() -> None:
    """Restore every patched method; fits are no longer recorded."""
    global _enabled_depth
    with _lock:
        _enabled_depth = 0
        _uninstall()


def autolog_enabled() -> bool:
    return any(True for _ in _patching.patched()) or _finder is not None


class _autolog_scope:
    """Patches active for the duration of one decorated call, unless autolog is on already."""

    def __init__(self, *, uri: str | None, tracker: Tracker | None, model: str) -> None:
        self.uri, self.tracker, self.model = uri, tracker, model
        self.owned = False

    def __enter__(self) -> None:
        with _lock, guarded("autolog: patch frameworks"):
            if _enabled_depth == 0 and not autolog_enabled():
                _settings.update(uri=self.uri, tracker=self.tracker, model=self.model)
                _settings.update(sklearn=True, keras=True, lightning=True)
                _install()
                self.owned = True

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            with _lock, guarded("autolog: unpatch frameworks"):
                _uninstall()


def _install() -> None:
    global _finder
    for framework, module in _MODULES.items():
        if _settings.get(framework) and module in sys.modules:
            _patch(framework)
    if _finder is None:
        targets = {module: framework for framework, module in _MODULES.items()}
        _finder = _patching.PatchOnImport(targets, lambda fw: bool(_settings.get(fw)), _patch_on_import)
        sys.meta_path.insert(0, _finder)


def _uninstall() -> None:
    global _finder
    if _finder is not None:
        with guarded("autolog: remove import hook"):
            sys.meta_path.remove(_finder)
        _finder = None
    _patching.restore_all()
    _patched_frameworks.clear()


def _patch_on_import(framework: str) -> None:
    with _lock, guarded(f"autolog: patch {framework}"):
        _patch(framework)


def _patch(framework: str) -> None:
    if framework in _patched_frameworks:
        return
    _patched_frameworks.add(framework)
    {"sklearn": _patch_sklearn, "keras": _patch_keras, "lightning": _patch_lightning}[framework]()


def _model_name(default: str) -> str:
    return str(_settings.get("model") or default)


def _tracker() -> Tracker | None:
    return _settings.get("tracker")


def _skip(*, extra: bool = False) -> bool:
    """A fit inside a recorded fit, or after disable_autolog(): leave it alone."""
    return extra or _IN_PATCHED_FIT.get() or not autolog_enabled()


def _patch_sklearn() -> None:
    from sklearn.base import BaseEstimator
    from sklearn.utils import all_estimators

    # An estimator often inherits fit (RandomForestClassifier from BaseForest): patch where it is defined.
    owners = {
        klass
        for _, cls in all_estimators()
        for klass in cls.__mro__
        if "fit" in klass.__dict__ and issubclass(klass, BaseEstimator)
    }
    for owner in sorted(owners, key=lambda k: f"{k.__module__}.{k.__qualname__}"):
        _patching.replace(owner, "fit", _sklearn_fit)


def _sklearn_fit(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        from . import sklearn as adapter

        if _skip(extra=adapter.fit_in_progress()):
            return original(self, *args, **kwargs)
        X = args[0] if args else kwargs.get("X")
        y = args[1] if len(args) > 1 else kwargs.get("y")
        token = _IN_PATCHED_FIT.set(True)
        try:
            return adapter.record_fit(
                self,
                lambda: original(self, *args, **kwargs),
                X,
                y,
                model=_model_name(adapter.default_model_name(self)),
                uri=_settings.get("uri"),
                tracker=_settings.get("tracker"),
            )
        finally:
            _IN_PATCHED_FIT.reset(token)

    return fit


def _patch_keras() -> None:
    import keras

    _patching.replace(keras.Model, "fit", _keras_fit)


def _keras_fit(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _skip() or len(args) >= 6:  # callbacks given by position: the user's list is left as it is
            return original(self, *args, **kwargs)
        callback = None
        with guarded("autolog: keras callback"):
            from .keras import ModeltrailCallback, is_auto_name

            callbacks = list(kwargs.get("callbacks") or [])
            if not any(isinstance(c, ModeltrailCallback) for c in callbacks):
                default = type(self).__name__ if is_auto_name(self.name, type(self)) else self.name
                callback = ModeltrailCallback(model=_model_name(default), uri=_settings.get("uri"), tracker=_tracker())
                kwargs["callbacks"] = [*callbacks, callback]
        token = _IN_PATCHED_FIT.set(True)
        try:
            if callback is None:
                return original(self, *args, **kwargs)
            with callback:  # records the exact error if fit raises, then re-raises it
                return original(self, *args, **kwargs)
        finally:
            _IN_PATCHED_FIT.reset(token)

    return fit


def _patch_lightning() -> None:
    from lightning.pytorch import Trainer

    _patching.replace(Trainer, "fit", _lightning_fit)


def _lightning_fit(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _skip():
            return original(self, *args, **kwargs)
        previous = None
        with guarded("autolog: lightning logger"):
            from .lightning import ModeltrailLogger

            if not any(isinstance(logger, ModeltrailLogger) for logger in self.loggers):
                module = args[0] if args else kwargs.get("model")
                previous = list(self.loggers)
                logger = ModeltrailLogger(
                    _model_name(type(module).__name__), uri=_settings.get("uri"), tracker=_tracker()
                )
                self.loggers = [*previous, logger]
        token = _IN_PATCHED_FIT.set(True)
        try:
            return original(self, *args, **kwargs)
        finally:
            _IN_PATCHED_FIT.reset(token)
            if previous is not None:
                self.loggers = previous  # one logger per fit: a second fit gets a fresh one

    return fit


# ------------------------------------------------------------------ run a script
def run_script(path: str, argv: list[str], *, uri: str | None = None, model: str | None = None) -> int:
    """Run ``path`` as ``__main__`` with autolog on; returns its exit status."""
    if not os.path.isfile(path):
        from modeltrail._errors import ValidationError

        raise ValidationError(f"no such script: {path!r}", value=path)
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [path, *argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    enable_autolog(uri, model=model)
    try:
        runpy.run_path(path, run_name="__main__")
        return 0
    except SystemExit as e:
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        disable_autolog()
        sys.argv, sys.path[:] = saved_argv, saved_path
        with guarded("autolog: flush"):
            from modeltrail._store import close_all

            close_all()


def _iter_patches() -> Iterator[tuple[Any, str]]:
    """What is patched now, as (owner, attribute): for tests and debugging."""
    return _patching.patched()
