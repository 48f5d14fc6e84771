"""The JSON API behind the pages, for scripts: the Python API's records, as documented JSON.

Each route answers with the same records the :class:`~modeltrail.Tracker` methods return,
so ``GET /api/models/churn/leaderboard?metric=val_auc`` is ``tracker.leaderboard("churn", "val_auc")``.
A model is named by its name or its id; a name may contain ``/``. Only GET routes exist.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from .._errors import NotFoundError, ValidationError
from .._records import (
    AuditRecord,
    Comparison,
    DeploymentRecord,
    LeaderboardEntry,
    MetricPoint,
    ModelPage,
    ModelSummary,
    RecordList,
    Series,
    ServingInstanceRecord,
    TrainingRecord,
    VersionMetric,
    VersionRecord,
)
from .._tracker import Tracker

router = APIRouter(prefix="/api", tags=["api"])

Mode = Literal["max", "min"]
MAX_POINTS_LIMIT = 1_000_000


def _plain(tp: Any) -> Any:
    """``tp`` with every ``RecordList[X]`` in it spelled ``list[X]``, a type pydantic can describe."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is RecordList:
        return list[_plain(args[0])] if args else list[Any]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_plain(a) for a in args)]  # noqa: UP007
    return tp


def json_view(record_type: type) -> type:
    """A dataclass with ``record_type``'s fields, made from them so the two never drift apart.

    Records that hold a ``RecordList`` (a list subclass with no JSON schema) get a twin whose
    fields are plain lists; FastAPI documents and serialises the twin.
    """
    hints = typing.get_type_hints(record_type)
    fields = [(f.name, _plain(hints[f.name])) for f in dataclasses.fields(record_type)]
    view = dataclasses.make_dataclass(record_type.__name__, fields, frozen=True)
    view.__doc__ = record_type.__doc__
    return view


ComparisonView = json_view(Comparison)


def comparison_view(comparison: Comparison) -> Any:
    values = {f.name: getattr(comparison, f.name) for f in dataclasses.fields(comparison)}
    return ComparisonView(**{k: list(v) if isinstance(v, RecordList) else v for k, v in values.items()})


def ledger(request: Request) -> Tracker:
    """The app's read-only Tracker."""
    tracker: Tracker = request.app.state.tracker
    return tracker


Ledger = Annotated[Tracker, Depends(ledger)]
#: A row id as the database keeps it (64-bit signed): a larger one is a 422, never a driver overflow.
ID_MAX = 2**63 - 1
RowId = Annotated[int, Path(ge=-(2**63), le=ID_MAX)]
MaxPoints = Annotated[
    int,
    Query(
        ge=0,
        le=MAX_POINTS_LIMIT,
        description="points per series at most (a longer history is downsampled, each bucket's extremes kept); 0: all",
    ),
]


T = TypeVar("T")


def by_ref(model: str, ask: Callable[[int | str], T]) -> T:
    """``ask(model)`` with the model a URL names: by id or by name; a name of digits only is read as an id first.

    No query of its own: ``ask`` resolves it; only a number that is no model's id is asked again as a name.
    Digits past a 64-bit id are a 422, as every id in a URL is (never a driver overflow, never a guess).
    """
    if model.isascii() and model.isdigit():
        if int(model) > ID_MAX:
            raise HTTPException(422, f"a model id must be less than or equal to {ID_MAX}, got {model}")
        try:
            return ask(int(model))
        except NotFoundError:
            pass  # a model named "2024", say, with no model of that id
    return ask(model)


def parse_versions(values: list[str] | None) -> list[int] | None:
    """Version numbers from repeated ``version=`` values and/or comma-separated lists."""
    if not values:
        return None
    numbers: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip().lstrip("v")
            if part:
                try:
                    numbers.append(int(part))
                except ValueError:
                    raise ValidationError(f"a version number is an integer, got {part!r}", value=part) from None
    return numbers or None


@router.get("/models", response_model=list[ModelSummary], summary="Models, filtered")
def list_models(
    tracker: Ledger,
    name: Annotated[str | None, Query(description="a substring of the name")] = None,
    framework: str | None = None,
    model_type: str | None = None,
    tag: Annotated[str | None, Query(description="`key` or `key=value`")] = None,
) -> list[ModelSummary]:
    """Every model matching the filters, with the version serving in each environment now."""
    return tracker.model_summaries(framework=framework, model_type=model_type, tag=tag, name=name)


@router.get("/models/{model:path}/versions", response_model=list[VersionRecord], summary="A model's versions")
def versions(tracker: Ledger, model: str) -> list[VersionRecord]:
    """Every version: number, parent, param diff against the parent, artifact (``tracker.versions``)."""
    return list(by_ref(model, lambda ref: tracker.versions(ref)))


@router.get("/models/{model:path}/leaderboard", response_model=list[LeaderboardEntry], summary="Versions ranked")
def leaderboard(
    tracker: Ledger,
    model: str,
    metric: str,
    mode: Annotated[
        Mode | None,
        Query(description="default: the model's declared goal, else the name's (losses min, AUC max); else 400"),
    ] = None,
    by: Annotated[Literal["best", "last"], Query(description="rank by the best value over history, or the last")] = (
        "best"
    ),
    limit: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> list[LeaderboardEntry]:
    """Versions ranked by ``metric`` (``tracker.leaderboard``)."""
    return list(by_ref(model, lambda ref: tracker.leaderboard(ref, metric, mode=mode, by=by, limit=limit)))


@router.get("/models/{model:path}/compare", response_model=ComparisonView, summary="Two versions side by side")
def compare(tracker: Ledger, model: str, a: int, b: int) -> Any:
    """What changed from version ``a`` to ``b``: params, metric deltas, dataset, duration, code."""
    return comparison_view(by_ref(model, lambda ref: tracker.compare(ref, a, b)))


@router.get(
    "/models/{model:path}/metric-by-version", response_model=list[VersionMetric], summary="A metric across versions"
)
def metric_by_version(tracker: Ledger, model: str, metric: str, mode: Mode | None = None) -> list[VersionMetric]:
    """``metric``'s final and best value in every version that logged it (``tracker.metric_by_version``)."""
    return list(by_ref(model, lambda ref: tracker.metric_by_version(ref, metric, mode=mode)))


@router.get("/models/{model:path}/curves", response_model=list[Series], summary="Step curves of versions")
def curves(
    tracker: Ledger,
    model: str,
    metric: str,
    version: Annotated[
        list[str] | None, Query(description="version numbers, repeated or comma-separated; default: the latest six")
    ] = None,
    max_points: MaxPoints = Tracker.SERIES_POINTS_MAX,
) -> list[Series]:
    """``metric``'s history in each version, one series per version, as ``[step, value]`` points."""
    numbers = parse_versions(version)
    return by_ref(model, lambda ref: tracker.metric_series(ref, metric, versions=numbers, max_points=max_points))


@router.get("/models/{model:path}/deployments", response_model=list[DeploymentRecord], summary="Deployment timelines")
def deployments(tracker: Ledger, model: str, environment: str | None = None) -> list[DeploymentRecord]:
    """Every deployment, rollback and undeploy of the model, per environment, oldest first."""
    return list(by_ref(model, lambda ref: tracker.deployments(ref, environment=environment)))


@router.get("/models/{model:path}/instances", response_model=list[ServingInstanceRecord], summary="Serving instances")
def instances(
    tracker: Ledger,
    model: str,
    environment: str | None = None,
    state: Literal["serving", "lost", "stopped", "failed"] | None = None,
) -> list[ServingInstanceRecord]:
    """The model's ``modeltrail serve`` processes, newest first: version, address, heartbeat, state."""
    return list(by_ref(model, lambda ref: tracker.serving_instances(ref, environment=environment, state=state)))


@router.get("/models/{model:path}", response_model=ModelPage, summary="A model with its versions table")
def model_detail(tracker: Ledger, model: str) -> ModelPage:
    """The model, its metrics, every version with the key metrics' final values, and its deployments."""
    return by_ref(model, lambda ref: tracker.model_page(ref))


@router.get("/trainings", response_model=list[TrainingRecord], summary="Trainings, searched")
def trainings(
    tracker: Ledger,
    model: Annotated[str | None, Query(description="one model's trainings (default: every model's)")] = None,
    status: str | None = None,
    where: Annotated[
        str | None, Query(description="`params.max_depth >= 8 and metrics.val_auc > 0.9 and status = 'finished'`")
    ] = None,
    order_by: Annotated[str | None, Query(description="`metrics.val_auc desc, started_at`")] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> list[TrainingRecord]:
    """Trainings of any status, with or without a version, filtered like search_runs (``tracker.trainings``)."""
    return list(tracker.trainings(model, status=status, where=where, order_by=order_by, limit=limit))


@router.get("/trainings/{training_id}", response_model=TrainingRecord, summary="A training")
def training(tracker: Ledger, training_id: RowId) -> TrainingRecord:
    """Params, metric summaries, dataset, artifact, context and stages of one training."""
    return tracker.get_training(training_id)


@router.get("/trainings/{training_id}/history", response_model=list[Series], summary="A training's metrics")
def history(
    tracker: Ledger, training_id: RowId, metric: str | None = None, max_points: MaxPoints = Tracker.SERIES_POINTS_MAX
) -> list[Series]:
    """Every metric's history (or only ``metric``) of one training, as ``[step, value]`` points.

    A long history comes downsampled: each bucket's lowest and highest point, the first and the last.
    """
    return tracker.training_series(training_id, metric=metric, max_points=max_points)


@router.get(
    "/trainings/{training_id}/history/{metric}",
    response_model=list[MetricPoint],
    summary="One metric's raw points, page by page",
)
def history_page(
    tracker: Ledger,
    training_id: RowId,
    metric: str,
    after_step: Annotated[
        int | None,
        Query(ge=-(2**63), le=ID_MAX, description="points after this step (the last one of the page before)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> list[MetricPoint]:
    """Raw points in step order, ``limit`` a page (more when the last step was logged twice)."""
    tracker.get_training(training_id)  # a 404 for a training that does not exist
    return list(tracker.metric_history(training_id, metric, after_step=after_step, limit=limit))


@router.get("/audit", response_model=list[AuditRecord], summary="The audit log")
def audit(
    tracker: Ledger,
    action: Annotated[str | None, Query(description="an action, or a prefix ending in `*`: `deployment.*`")] = None,
    entity: str | None = None,
    entity_id: str | None = None,
    since: Annotated[dt.date | None, Query(description="events from this day on (UTC)")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[AuditRecord]:
    """Audit events, newest first (``tracker.audit``)."""
    return list(tracker.audit(action=action, entity=entity, entity_id=entity_id, since=since, limit=limit))
