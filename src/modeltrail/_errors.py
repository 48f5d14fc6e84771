"""One exception hierarchy, so callers can catch ``ModeltrailError`` and nothing else.

Every error that is about a value the caller passed carries that value in
``.value`` and names it in the message::

    ModeltrailError
    ├── ValidationError            (also a ValueError)   a value given to the API is refused
    │   └── ConflictError                                 the ledger is not in the state the caller expected
    ├── ConfigurationError         (also a ValueError)   a URL or setting cannot be used
    ├── NotFoundError              (also a LookupError)  no such model, version, training, deployment
    └── StorageError                                      the database refused or failed
        ├── StorageUnavailableError                       the server cannot be reached
        ├── PermissionDeniedError                         the database user lacks a privilege
        └── SchemaError                                   not the schema this version expects
            └── SchemaOutdatedError                       an older revision: ``modeltrail db upgrade``

    ModeltrailWarning (a RuntimeWarning)   logging failed and was skipped; training went on
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any


class ModeltrailError(Exception):
    """Base class of every error modeltrail raises on purpose."""

    def __init__(self, message: str, *, value: Any = None) -> None:
        super().__init__(message)
        self.value = value


class ValidationError(ModeltrailError, ValueError):
    """A value given to the API is not acceptable (bad name, key, step, metric value...)."""


class ConflictError(ValidationError):
    """The ledger is not in the state the caller said it expected, so nothing was changed.

    Raised when ``expect_version=`` names a version other than the one serving the environment
    (someone else deployed, rolled back or retired in between), or when a ``request_id`` already
    answered one change is sent with another. Read the state again and decide; retrying the same
    call blindly will not help.
    """


class ConfigurationError(ModeltrailError, ValueError):
    """The database URL or another setting cannot be used."""


class NotFoundError(ModeltrailError, LookupError):
    """A model, version, training or deployment asked for does not exist."""


class StorageError(ModeltrailError):
    """The database refused or failed an operation."""


class StorageUnavailableError(StorageError):
    """The database server cannot be reached."""


class PermissionDeniedError(StorageError):
    """The database user lacks a privilege the operation needs."""


class SchemaError(StorageError):
    """The database schema is not the one this modeltrail version expects."""


class SchemaOutdatedError(SchemaError):
    """The database is at an older schema revision: run ``modeltrail db upgrade``."""


class ModeltrailWarning(RuntimeWarning):
    """Logging failed and was skipped so that the user's training could go on (issued once per cause)."""


#: The extra that installs each optional module modeltrail imports only when it is needed.
EXTRAS = {
    "pymysql": "mysql",
    "psycopg": "postgres",
    "matplotlib": "plot",
    "pandas": "pandas",
    "fastapi": "ui",
    "jinja2": "ui",
    "uvicorn": "ui",
    "jsonschema": "schema",
    "sklearn": "sklearn",
    "joblib": "sklearn",
    "lightning": "lightning",
    "keras": "keras",
    "s3fs": "s3",
    "gcsfs": "gcs",
    "adlfs": "azure",
    "skops": "skops",
    "transformers": "transformers",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "optuna": "optuna",
    "psutil": "system",
    "pynvml": "gpu",
}


def install_hint(error: BaseException | None) -> str | None:
    """``pip install "modeltrail[mysql]"`` when ``error`` (or an error behind it) is a missing optional module."""
    while error is not None:
        if isinstance(error, ImportError) and error.name:
            extra = EXTRAS.get(error.name.partition(".")[0])
            if extra is not None:
                return f'pip install "modeltrail[{extra}]"'
        error = error.__cause__ or error.__context__
    return None


#: Top-level packages whose frames are not the user's line: modeltrail, the frameworks it adapts, and the
#: standard library's plumbing between them (``contextlib`` for ``with guarded(...)``).
_NOT_USER = frozenset(
    {
        "modeltrail", "contextlib", "functools", "threading", "importlib", "runpy", "sklearn", "joblib",
        "keras", "lightning", "pytorch_lightning", "torch", "transformers", "accelerate", "xgboost",
        "lightgbm", "optuna",
    }
)  # fmt: skip


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a ``warnings.warn`` in the calling function point at the user's line.

    The first frame outside modeltrail, the frameworks and ``contextlib``: the user's ``clf.fit(X, y)``, not
    ``contextlib.py:158``. A stack that is all internal (a background thread) points at the caller itself.
    """
    frame: FrameType | None = sys._getframe(1)
    level = 1
    try:
        while frame is not None:
            if str(frame.f_globals.get("__name__", "")).split(".")[0] not in _NOT_USER:
                return level
            frame = frame.f_back
            level += 1
        return 1
    finally:
        del frame
