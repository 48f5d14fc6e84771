"""One exception hierarchy, so callers can catch ``ModeltrailError`` and nothing else.

Every error that is about a value the caller passed carries that value in
``.value`` and names it in the message.
"""

from __future__ import annotations

from typing import Any


class ModeltrailError(Exception):
    """Base class of every error modeltrail raises on purpose."""

    def __init__(self, message: str, *, value: Any = None) -> None:
        super().__init__(message)
        self.value = value


class ValidationError(ModeltrailError, ValueError):
    """A value given to the API is not acceptable (bad name, key, step, metric value...)."""


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
