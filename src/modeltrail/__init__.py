"""modeltrail: every ML model's life in a SQL database you already own.

This module is the public API: every name a user needs, and every record type the API
returns, is here and in ``__all__``; modules whose names start with ``_`` are private.
Names are loaded on first use (PEP 562) so ``import modeltrail`` stays cheap and never
imports SQLAlchemy, numpy or an ML framework until something needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AuditOptions": "_records",
    "AuditRecord": "_records",
    "Comparison": "_records",
    "ConfigurationError": "_errors",
    "ConflictError": "_errors",
    "CurvePoint": "_records",
    "Dataset": "_dataset",
    "DatasetRecord": "_records",
    "DatasetUse": "_records",
    "DeploymentRecord": "_records",
    "Difference": "_records",
    "EvaluationDelta": "_records",
    "EvaluationRecord": "_records",
    "ExportResult": "_records",
    "FilterOptions": "_records",
    "LeaderboardEntry": "_records",
    "Lineage": "_records",
    "MetricDelta": "_records",
    "MetricInfo": "_records",
    "MetricPoint": "_records",
    "MetricSummary": "_records",
    "ModelDetails": "_records",
    "ModelPage": "_records",
    "MetricGoalRecord": "_records",
    "ModelRecord": "_records",
    "ModelSummary": "_records",
    "ModeltrailError": "_errors",
    "ModeltrailWarning": "_errors",
    "NotFoundError": "_errors",
    "PendingVersion": "_records",
    "PermissionDeniedError": "_errors",
    "ProductionComparison": "_records",
    "ProductionMetricRecord": "_records",
    "RecordList": "_records",
    "Reproduction": "_records",
    "SchemaError": "_errors",
    "SchemaOutdatedError": "_errors",
    "SchemaState": "_records",
    "Series": "_records",
    "SpoolReplay": "_records",
    "Stage": "_training",
    "StageRecord": "_records",
    "StorageError": "_errors",
    "StorageUnavailableError": "_errors",
    "Tracker": "_tracker",
    "Training": "_training",
    "TrainingCounts": "_records",
    "TrainingRecord": "_records",
    "ValidationError": "_errors",
    "VersionDetails": "_records",
    "VersionLine": "_records",
    "VersionMetric": "_records",
    "VersionRecord": "_records",
    "active_training": "_training",
    "autolog": "integrations.autolog",
    "disable_autolog": "integrations.autolog",
    "enable_autolog": "integrations.autolog",
}

__all__ = [
    "AuditOptions",
    "AuditRecord",
    "Comparison",
    "ConfigurationError",
    "ConflictError",
    "CurvePoint",
    "Dataset",
    "DatasetRecord",
    "DatasetUse",
    "DeploymentRecord",
    "Difference",
    "EvaluationDelta",
    "EvaluationRecord",
    "ExportResult",
    "FilterOptions",
    "LeaderboardEntry",
    "Lineage",
    "MetricDelta",
    "MetricGoalRecord",
    "MetricInfo",
    "MetricPoint",
    "MetricSummary",
    "ModelDetails",
    "ModelPage",
    "ModelRecord",
    "ModelSummary",
    "ModeltrailError",
    "ModeltrailWarning",
    "NotFoundError",
    "PendingVersion",
    "PermissionDeniedError",
    "ProductionComparison",
    "ProductionMetricRecord",
    "RecordList",
    "Reproduction",
    "SchemaError",
    "SchemaOutdatedError",
    "SchemaState",
    "Series",
    "SpoolReplay",
    "Stage",
    "StageRecord",
    "StorageError",
    "StorageUnavailableError",
    "Tracker",
    "Training",
    "TrainingCounts",
    "TrainingRecord",
    "ValidationError",
    "VersionDetails",
    "VersionLine",
    "VersionMetric",
    "VersionRecord",
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
        ConflictError,
        ModeltrailError,
        ModeltrailWarning,
        NotFoundError,
        PermissionDeniedError,
        SchemaError,
        SchemaOutdatedError,
        StorageError,
        StorageUnavailableError,
        ValidationError,
    )
    from ._records import (
        AuditOptions,
        AuditRecord,
        Comparison,
        CurvePoint,
        DatasetRecord,
        DatasetUse,
        DeploymentRecord,
        Difference,
        EvaluationDelta,
        EvaluationRecord,
        ExportResult,
        FilterOptions,
        LeaderboardEntry,
        Lineage,
        MetricDelta,
        MetricGoalRecord,
        MetricInfo,
        MetricPoint,
        MetricSummary,
        ModelDetails,
        ModelPage,
        ModelRecord,
        ModelSummary,
        PendingVersion,
        ProductionComparison,
        ProductionMetricRecord,
        RecordList,
        Reproduction,
        SchemaState,
        Series,
        SpoolReplay,
        StageRecord,
        TrainingCounts,
        TrainingRecord,
        VersionDetails,
        VersionLine,
        VersionMetric,
        VersionRecord,
    )
    from ._tracker import Tracker
    from ._training import Stage, Training, active_training
    from .integrations.autolog import autolog, disable_autolog, enable_autolog
