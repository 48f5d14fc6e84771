"""Autolog's switch: which frameworks are patched, with what settings; the originals to put back; the import hook.

Framework-free: autolog registers in :data:`PATCHERS` how to patch each framework; this module decides when
(now if the framework is imported, else the moment user code imports it) and restores the originals.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import os
import runpy
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any

from modeltrail._adapter import (
    Lifecycle,
    attach_preprocessing,
    close_all,
    guarded,
    has_preprocessing,
    take_preprocessing,
)

_MISSING = object()
#: The module whose import patches each framework.
MODULES = {
    "sklearn": "sklearn.base",
    "keras": "keras",
    "lightning": "lightning.pytorch",
    "transformers": "transformers.trainer",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
}
#: Every framework on: what ``@autolog`` and ``modeltrail run`` patch.
ALL = dict.fromkeys(MODULES, True)
#: How to patch each framework (filled in by autolog).
PATCHERS: dict[str, Callable[[], None]] = {}
#: What patched fits record into: ``uri``, ``tracker``, ``model``, and which frameworks are on.
settings: dict[str, Any] = {}

_lock = threading.RLock()
_patched_frameworks: set[str] = set()
_finder: PatchOnImport | None = None
_enabled_depth = 0  # enable() calls (explicit ones count as permanent)
_patches: list[tuple[Any, str, Any]] = []  # (owner, attribute, original) to restore, in patching order
_undo: list[Callable[[], Any]] = []  # what patched calls attached to users' objects, taken off at disable


def replace(owner: Any, attribute: str, make: Callable[[Any], Any]) -> None:
    """Set ``owner.attribute`` to ``make(current)``, remembering what to restore."""
    original = owner.__dict__.get(attribute, _MISSING)
    current = getattr(owner, attribute)
    _patches.append((owner, attribute, original))
    setattr(owner, attribute, make(current))


def on_disable(undo: Callable[[], Any]) -> None:
    """Run ``undo`` when autolog is disabled: for what a patched call attached to a user's object (a callback)."""
    _undo.append(undo)


def restore_all() -> None:
    """Undo every :func:`replace`, newest first (an inherited method is deleted again, not copied down), and
    every :func:`on_disable`."""
    while _undo:
        with guarded("autolog: detaching a callback"):
            _undo.pop()()
    while _patches:
        owner, attribute, original = _patches.pop()
        if original is _MISSING:
            delattr(owner, attribute)
        else:
            setattr(owner, attribute, original)


def patched() -> Iterator[tuple[Any, str]]:
    """What is patched now, as (owner, attribute): for tests and debugging."""
    for owner, attribute, _ in _patches:
        yield owner, attribute


class PatchOnImport(importlib.abc.MetaPathFinder):
    """Calls ``patch(framework)`` right after the module ``targets`` names for it is imported, if ``wanted``."""

    def __init__(self, targets: Mapping[str, str], wanted: Callable[[str], bool], patch: Callable[[str], None]):
        self.targets, self.wanted, self.patch = dict(targets), wanted, patch

    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None) -> Any:
        framework = self.targets.get(fullname)
        if framework is None or not self.wanted(framework):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _PatchingLoader(spec.loader, lambda: self.patch(framework))
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, after: Callable[[], None]) -> None:
        self.loader = loader
        self.after = after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.after()


# ------------------------------------------------------------------ the switch
def enable(**options: Any) -> None:
    """Patch the frameworks ``options`` turn on, now or when imported, until :func:`disable`."""
    global _enabled_depth
    with _lock:
        settings.update(options)
        _enabled_depth = max(_enabled_depth, 0) + 1
        _install()


def disable() -> None:
    global _enabled_depth
    with _lock:
        _enabled_depth = 0
        _uninstall()
    record_preprocessing_left()


def preprocessing_waits() -> None:
    """A preprocessing fit now waits for a training: should the process end first, record it then.

    Registered again at each wait so that it runs before the exit hooks of the Trackers made so far (atexit runs
    the newest first), while their writers still write.
    """
    atexit.unregister(record_preprocessing_left)
    atexit.register(record_preprocessing_left)


def record_preprocessing_left() -> None:
    """Preprocessing fits that no model's training followed become one training of their own, at the end.

    Its model is ``--model`` / ``model=``, else the script's name (``prepare`` for ``prepare.py``), else
    ``preprocessing``: never the transformer's class, which would turn each scaler into a model.
    """
    if not has_preprocessing():
        return
    with guarded("autolog: recording the preprocessing"):
        script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c") else None  # run_script sets it too
        name = settings.get("model") or (os.path.splitext(os.path.basename(script))[0] if script else None)
        steps = take_preprocessing()
        life = Lifecycle(str(steps[0].get("framework") or "sklearn"), settings.get("tracker") or settings.get("uri"))
        run = life.start(
            str(name or "preprocessing"),
            train_stage=False,
            model_type="transformer",
            model_class=steps[0]["class"] if len(steps) == 1 else None,
        )
        attach_preprocessing(run, steps)
        life.end()


def enabled() -> bool:
    return bool(_patches) or _finder is not None


class scope:
    """Patches active for the duration of one decorated call, unless autolog is on already."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.owned = False

    def __enter__(self) -> None:
        with _lock, guarded("autolog: patch frameworks"):
            if _enabled_depth == 0 and not enabled():
                settings.update(self.options, **ALL)
                _install()
                self.owned = True

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            with _lock, guarded("autolog: unpatch frameworks"):
                _uninstall()


def _install() -> None:
    global _finder
    for framework, module in MODULES.items():
        if settings.get(framework) and module in sys.modules:
            _patch(framework)
    if _finder is None:
        targets = {module: framework for framework, module in MODULES.items()}
        _finder = PatchOnImport(targets, lambda fw: bool(settings.get(fw)), _patch_on_import)
        sys.meta_path.insert(0, _finder)


def _uninstall() -> None:
    global _finder
    if _finder is not None:
        with guarded("autolog: remove import hook"):
            sys.meta_path.remove(_finder)
        _finder = None
    restore_all()
    _patched_frameworks.clear()


def _patch_on_import(framework: str) -> None:
    with _lock, guarded(f"autolog: patch {framework}"):
        _patch(framework)


def _patch(framework: str) -> None:
    if framework not in _patched_frameworks:
        _patched_frameworks.add(framework)
        PATCHERS[framework]()


# ------------------------------------------------------------------ run a script
def run_script(path: str, argv: list[str], *, uri: str | None = None, model: str | None = None) -> int:
    """Run ``path`` as ``__main__`` with autolog on; returns its exit status."""
    if not os.path.isfile(path):
        from modeltrail._errors import ValidationError

        raise ValidationError(f"no such script: {path!r}", value=path)
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [path, *argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    enable(uri=uri, tracker=None, model=model, **ALL)
    try:
        runpy.run_path(path, run_name="__main__")
        return 0
    except SystemExit as e:
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Exception as e:  # as ``python script.py`` would: the script's traceback (not modeltrail's), status 1
        script, tb = os.path.abspath(path), e.__traceback__
        while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != script:
            tb = tb.tb_next
        traceback.print_exception(type(e), e, tb or e.__traceback__)
        return 1
    finally:
        disable()
        sys.argv, sys.path[:] = saved_argv, saved_path
        with guarded("autolog: flush"):
            close_all()
