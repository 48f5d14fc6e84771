"""What queries return: plain frozen dataclasses, detached from any database session.

They survive pickling and threads, print readably, and a list of them converts to
a pandas DataFrame with :meth:`RecordList.to_pandas` where pandas is installed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

R = TypeVar("R")


class RecordList(list[R], Generic[R]):
    """A list of records that also knows how to become a table."""

    def to_dicts(self) -> list[dict[str, Any]]:
        return [to_dict(r) for r in self]

    def to_pandas(self) -> Any:
        try:
            import pandas as pd
        except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
            raise ModuleNotFoundError('to_pandas() needs pandas: pip install "modeltrail[pandas]"') from e
        return pd.DataFrame([_flat(to_dict(r)) for r in self])


def to_dict(record: Any) -> dict[str, Any]:
    return dataclasses.asdict(record) if dataclasses.is_dataclass(record) else dict(record)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k in ("metrics", "params", "summary", "dataset"):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@dataclass(frozen=True)
class MetricSummary:
    """Last, min and max of one metric over one training's whole history."""

    key: str
    count: int
    last: float
    last_step: int
    min: float | None
    min_step: int | None
    max: float | None
    max_step: int | None


@dataclass(frozen=True)
class MetricPoint:
    step: int
    value: float
    timestamp: dt.datetime


@dataclass(frozen=True)
class DatasetRecord:
    id: int
    name: str
    digest: str
    n_rows: int | None
    n_features: int | None
    shape: list[int] | None
    features: list[str] | None
    source: str | None


@dataclass(frozen=True)
class VersionRecord:
    id: int
    model: str
    number: int
    training_id: int
    parent_number: int | None
    artifact_path: str | None
    param_diff: dict[str, Any]
    created_at: dt.datetime


@dataclass(frozen=True)
class TrainingRecord:
    id: int
    uuid: str
    model: str
    status: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    duration_s: float | None
    version: int | None
    dataset: DatasetRecord | None
    artifact_path: str | None
    artifact_sha256: str | None
    artifact_size: int | None
    error: str | None
    run_by: str | None
    host: str | None
    git_commit: str | None
    context: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, MetricSummary] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRecord:
    id: int
    name: str
    model_type: str | None
    framework: str | None
    description: str | None
    created_at: dt.datetime
    latest_version: int | None
    tags: dict[str, str] = field(default_factory=dict)
