"""What every adapter shares: never crash the user's training, and say which extra is missing."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("modeltrail.integrations")

_warned: set[str] = set()
_warned_lock = threading.Lock()


class ModeltrailWarning(RuntimeWarning):
    """modeltrail could not record something; the training itself went on."""


def warn_once(where: str, error: BaseException) -> None:
    """One warning per adapter hook and process; the full trace goes to the log."""
    with _warned_lock:
        first = where not in _warned
        _warned.add(where)
    log.debug("modeltrail %s failed", where, exc_info=error)
    if first:
        warnings.warn(
            f"modeltrail: {where} failed ({type(error).__name__}: {error}); training continues without it",
            ModeltrailWarning,
            stacklevel=3,
        )


@contextlib.contextmanager
def guarded(where: str) -> Iterator[None]:
    """Run modeltrail's own bookkeeping; on failure warn once and carry on."""
    try:
        yield
    except Exception as e:
        warn_once(where, e)


def guard(where: str, default: Any = None) -> Callable[[F], F]:
    """Decorator form of :func:`guarded` for adapter hooks; returns ``default`` on failure."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                warn_once(where, e)
                return default

        return inner  # type: ignore[return-value]

    return wrap


def require(module: str, extra: str) -> Any:
    """Import an optional framework, or raise ModuleNotFoundError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f'modeltrail.integrations.{extra} needs {module}: pip install "modeltrail[{extra}]"'
        ) from e
