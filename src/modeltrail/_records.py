"""What queries return: plain frozen dataclasses, detached from any database session.

They survive pickling and threads, print readably, and a list of them converts to
a pandas DataFrame with :meth:`RecordList.to_pandas` where pandas is installed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

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
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return dataclasses.asdict(record)
    return dict(record)


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
class PendingVersion:
    """The version a finished training gets once its spooled end reaches the database (it was unreachable).

    Falsy and without a number, so ``if run.version:`` still means "a version exists"; its text says
    why there is none yet and how to get it: the next process that reaches the database, or
    ``modeltrail sync``, replays the spool and makes the version.
    """

    model: str
    training_uuid: str
    number: None = None

    def __bool__(self) -> Literal[False]:  # Literal: type checkers narrow ``if run.version:`` to a VersionRecord
        return False

    def __str__(self) -> str:
        return (
            f"version of {self.model!r} pending: the database was unreachable, so the training's end is spooled; "
            "`modeltrail sync` (or the next modeltrail process that reaches the database) makes the version"
        )


@dataclass(frozen=True)
class StageRecord:
    name: str
    position: int
    status: str
    started_at: dt.datetime
    ended_at: dt.datetime
    duration_s: float
    error: str | None
    params: dict[str, Any] = field(default_factory=dict)


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
    stages: list[StageRecord] = field(default_factory=list)


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


@dataclass(frozen=True)
class DeploymentRecord:
    """One entry of an environment's timeline: what was deployed, by whom, why, and how it ended."""

    id: int
    model: str
    version: int
    environment: str
    endpoint: str | None
    status: str
    action: str
    deployed_at: dt.datetime
    ended_at: dt.datetime | None
    deployed_by: str | None
    reason: str | None
    replaces_id: int | None
    rollback_of_id: int | None


@dataclass(frozen=True)
class VersionDetails:
    """A version with the training behind it (params, metrics, dataset, artifact) and where it serves now."""

    version: VersionRecord
    training: TrainingRecord
    environments: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelDetails:
    model: ModelRecord
    versions: RecordList[VersionDetails]
    deployments: RecordList[DeploymentRecord]


@dataclass(frozen=True)
class EvaluationRecord:
    """An existing version scored on a named dataset after its training (``tracker.evaluate``)."""

    id: int
    uuid: str
    model: str
    version: int
    dataset: str
    dataset_digest: str | None
    evaluated_at: dt.datetime
    evaluated_by: str | None
    description: str | None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationDelta:
    """One metric of two versions' latest evaluations on one dataset, and ``b - a``."""

    dataset: str
    key: str
    mode: str
    value_a: float
    value_b: float
    delta: float


@dataclass(frozen=True)
class MetricDelta:
    """One metric both versions logged: final (last) and best values, and ``b - a`` for each.

    ``mode`` says which direction is best for this metric ("max" or "min").
    """

    key: str
    mode: str
    last_a: float
    last_b: float
    last_delta: float
    best_a: float | None
    best_b: float | None
    best_delta: float | None


@dataclass(frozen=True)
class Comparison:
    """What changed from version ``a`` to version ``b`` of one model."""

    model: str
    a: int
    b: int
    training_a: int
    training_b: int
    #: {"added": {k: v}, "removed": {k: v}, "changed": {k: {"old": v, "new": v}}} from a to b.
    params: dict[str, Any]
    metrics: RecordList[MetricDelta]
    metrics_only_a: list[str]
    metrics_only_b: list[str]
    dataset_a: DatasetRecord | None
    dataset_b: DatasetRecord | None
    dataset_changed: bool
    duration_a: float | None
    duration_b: float | None
    duration_delta: float | None
    commit_a: str | None
    commit_b: str | None
    code_changed: bool
    #: Metrics of the latest evaluation of each version on every dataset both were evaluated on.
    evaluations: RecordList[EvaluationDelta] = field(default_factory=lambda: RecordList())


@dataclass(frozen=True)
class LeaderboardEntry:
    """A version ranked by one metric; ``value`` is the ranked value (best over history, or last)."""

    rank: int
    model: str
    version: int
    training_id: int
    metric: str
    value: float
    step: int | None
    last: float
    best: float | None
    environments: list[str] = field(default_factory=list)
    #: The dataset whose evaluations were ranked (``leaderboard(..., dataset=...)``); None for training metrics.
    dataset: str | None = None


@dataclass(frozen=True)
class VersionMetric:
    """One metric's final and best value in one version: a point of an across-versions plot."""

    model: str
    version: int
    training_id: int
    metric: str
    mode: str
    count: int
    last: float
    last_step: int
    best: float | None
    best_step: int | None
    environments: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CurvePoint:
    """A metric point labelled with its version: many versions' curves fit in one table."""

    model: str
    version: int
    training_id: int
    metric: str
    step: int
    value: float
    timestamp: dt.datetime


@dataclass(frozen=True)
class ProductionMetricRecord:
    id: int
    deployment_id: int
    model: str
    version: int
    environment: str
    metric: str
    value: float
    measured_at: dt.datetime


@dataclass(frozen=True)
class ProductionComparison:
    """A production measurement beside the training metric of the version that was serving."""

    deployment_id: int
    environment: str
    version: int
    metric: str
    measured_at: dt.datetime
    value: float
    training_metric: str
    training_last: float | None
    training_best: float | None
    delta_last: float | None


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: dt.datetime
    action: str
    entity: str
    entity_id: str
    db_user: str | None
    os_user: str | None
    host: str | None
    before: Any
    after: Any


@dataclass(frozen=True)
class Lineage:
    """Where a version came from and where it went: dataset -> training -> version -> deployments.

    ``code`` is the git state the training ran at (commit, branch, dirty, root); ``environment`` the
    interpreter, platform, command line and package versions; ``deployments`` the whole timeline of
    the version in every environment, ``environments`` where it serves now.
    """

    model: str
    version: VersionRecord
    dataset: DatasetRecord | None
    training: TrainingRecord
    code: dict[str, Any]
    environment: dict[str, Any]
    deployments: RecordList[DeploymentRecord]
    environments: list[str]
    evaluations: RecordList[EvaluationRecord]


@dataclass(frozen=True)
class DatasetUse:
    """A version trained on a dataset, and where it serves now: the reverse lineage of a dataset digest."""

    model: str
    version: int
    training_id: int
    dataset: DatasetRecord
    environments: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reproduction:
    """What retraining a version needs: code, command line, interpreter, packages, params, seeds and data."""

    model: str
    version: int
    training_id: int
    git_commit: str | None
    git_branch: str | None
    git_dirty: bool | None
    git_root: str | None
    command: list[str] | None
    cwd: str | None
    python: str | None
    platform: str | None
    packages: dict[str, str]
    params: dict[str, Any]
    seeds: dict[str, Any]
    dataset: DatasetRecord | None


@dataclass(frozen=True)
class Difference:
    """One way the current environment differs from what a version was trained with."""

    what: str
    recorded: Any
    current: Any


# ------------------------------------------------------- the dashboard's reads
@dataclass(frozen=True)
class ModelSummary(ModelRecord):
    """A model as the list shows it: its record and the version serving in each environment now."""

    environments: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricInfo:
    """A metric some versions of a model logged: how many did, and which direction is better."""

    name: str
    versions: int
    mode: str


@dataclass(slots=True)
class VersionLine:
    """One line of a model's versions table (not frozen: a page makes thousands, and frozen ones cost more)."""

    number: int
    training_id: int
    parent_number: int | None
    created_at: dt.datetime
    status: str
    duration_s: float | None
    run_by: str | None
    git_commit: str | None
    #: Param keys added, removed or changed against the parent version.
    changed_params: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    #: The final (last logged) value of each key metric the version logged.
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelPage:
    """A model, its metrics, its versions table and its deployment timelines: a model page but the leaderboard."""

    model: ModelSummary
    metrics: list[MetricInfo]
    key_metrics: list[str]
    versions: list[VersionLine]
    deployments: list[DeploymentRecord]


@dataclass(frozen=True)
class Series:
    """One metric's history in one training, thinned to every ``stride``-th point when long.

    ``points`` are ``[step, value]`` pairs; the last logged point is always included.
    """

    metric: str
    training_id: int
    version: int | None
    total: int
    stride: int
    points: list[tuple[int, float]] = field(default_factory=list)


@dataclass(frozen=True)
class FilterOptions:
    """Values the model list can be filtered by: frameworks, model types and tags (``key=value``)."""

    frameworks: list[str]
    model_types: list[str]
    tags: list[str]


@dataclass(frozen=True)
class AuditOptions:
    """Actions and entities the audit log holds, for its filter menus."""

    actions: list[str]
    entities: list[str]


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: the model, its version numbers, and the files (empty when it went to a stream)."""

    model: str
    versions: list[int]
    files: list[str]


@dataclass(frozen=True)
class SchemaState:
    """A database's schema revision against the newest one this modeltrail knows."""

    uri: str
    current: str | None
    head: str
    state: str


@dataclass(frozen=True)
class SpoolReplay:
    """What ``sync`` replayed from the local spool into a database, and how many entries still wait."""

    uri: str
    replayed: int
    waiting: int
    #: Entries the database refused, set aside in the dead-letter file beside the spool during this sync.
    set_aside: int = 0
    #: Spool files that could not be read, renamed aside (``*.spool.damaged``) during this sync.
    quarantined: tuple[str, ...] = ()
    #: Entries in spools another replaying process (another ``modeltrail sync``) holds right now.
    held_by_other_sync: int = 0
    #: Entries in the spools of modeltrail processes still running (each replays its own).
    held_by_running: int = 0
    #: Where refused entries are kept (the dead-letter file), when there are any.
    dead_letters: str | None = None


@dataclass(frozen=True)
class MetricGoalRecord:
    """Which way is better for ``metric`` of ``model``, as declared with ``Tracker.set_metric_goal``."""

    model: str
    metric: str
    goal: str
    set_at: dt.datetime
    set_by: str | None


@dataclass(frozen=True)
class TrainingCounts:
    """A model's trainings by status, and how many of them have no version (failed, running, imported)."""

    model: str
    total: int
    by_status: dict[str, int] = field(default_factory=dict)
    without_version: dict[str, int] = field(default_factory=dict)
