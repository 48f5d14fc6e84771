"""modeltrail: every ML model's life in a SQL database you already own.

Names are loaded on first use (PEP 562) so ``import modeltrail`` stays cheap and
never imports SQLAlchemy, numpy or an ML framework until something needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ConfigurationError": "_errors",
    "Dataset": "_dataset",
    "ModeltrailError": "_errors",
    "NotFoundError": "_errors",
    "PermissionDeniedError": "_errors",
    "SchemaError": "_errors",
    "SchemaOutdatedError": "_errors",
    "StorageError": "_errors",
    "StorageUnavailableError": "_errors",
    "Tracker": "_tracker",
    "Training": "_training",
    "ValidationError": "_errors",
    "active_training": "_training",
    "autolog": "integrations.autolog",
    "disable_autolog": "integrations.autolog",
    "enable_autolog": "integrations.autolog",
}

__all__ = [
    "ConfigurationError",
    "Dataset",
    "ModeltrailError",
    "NotFoundError",
    "PermissionDeniedError",
    "SchemaError",
    "SchemaOutdatedError",
    "StorageError",
    "StorageUnavailableError",
    "Tracker",
    "Training",
    "ValidationError",
    "__version__",
    "active_training",
    "autolog",
    "disable_autolog",
    "enable_autolog",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modeltrail' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from ._dataset import Dataset
    from ._errors import (
        ConfigurationError,
        ModeltrailError,
        NotFoundError,
        PermissionDeniedError,
        SchemaError,
        SchemaOutdatedError,
        StorageError,
        StorageUnavailableError,
        ValidationError,
    )
    from ._tracker import Tracker
    from ._training import Training, active_training
    from .integrations.autolog import autolog, disable_autolog, enable_autolog
