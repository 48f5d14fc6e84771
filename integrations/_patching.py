"""Replace methods of a framework and put them back; patch a framework the moment user code imports it.

Framework-free: autolog says what to patch; this module only keeps the originals and hooks the import.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any

_MISSING = object()
_patches: list[tuple[Any, str, Any]] = []  # (owner, attribute, original) to restore, in patching order


def replace(owner: Any, attribute: str, make: Callable[[Any], Any]) -> None:
    """Set ``owner.attribute`` to ``make(current)``, remembering what to restore."""
    original = owner.__dict__.get(attribute, _MISSING)
    current = getattr(owner, attribute)
    _patches.append((owner, attribute, original))
    setattr(owner, attribute, make(current))


def restore_all() -> None:
    """Undo every :func:`replace`, newest first (an inherited method is deleted again, not copied down)."""
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
