"""The read side, shared by the Python API, the CLI and the dashboard.

Every function takes an open session and returns detached records. Names and
filters only ever reach SQL as bound parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._errors import NotFoundError, ValidationError
from .._records import (
    CurvePoint,
    DatasetRecord,
    MetricSummary,
    ModelDetails,
    ModelRecord,
    RecordList,
    StageRecord,
    TrainingCounts,
    TrainingRecord,
    VersionDetails,
    VersionRecord,
)
from .._rows import ACTIVE, resolve_model, resolve_version, version_record
from .._values import check_limit, check_metric_key, decode_float, from_jsonable
from . import history
from .deployments import active_environments, deployments

#: What a training's status can be.
TRAINING_STATUSES = ("running", "finished", "failed", "pruned")


# ------------------------------------------------------------------ lookups
def resolve_training_id(s: Session, ref: Any, *, version: int | None = None) -> int:
    """A training id from a Training, a record, a training id, or a model name (+ version number)."""
    if isinstance(ref, VersionRecord):
        return ref.training_id
    if hasattr(ref, "id") and hasattr(ref, "uuid"):  # Training or TrainingRecord
        return int(ref.id)
    if isinstance(ref, int) and not isinstance(ref, bool) and version is None:
        if s.get(schema.TrainingRow, ref) is None:
            raise NotFoundError(f"no training with id {ref}", value=ref)
        return ref
    if isinstance(ref, (str, int, ModelRecord)):
        return resolve_version(s, resolve_model(s, ref), version).training_id
    raise ValidationError(f"cannot find a training from {ref!r}", value=ref)


# ------------------------------------------------------------------ records
def model_records(s: Session, models: Iterable[schema.ModelRow]) -> RecordList[ModelRecord]:
    models = list(models)
    ids = [m.id for m in models]
    latest: dict[int, int] = {}
    tags: dict[int, dict[str, str]] = {}
    if ids:
        latest = dict(
            s.execute(
                select(schema.VersionRow.model_id, func.max(schema.VersionRow.number))
                .where(schema.VersionRow.model_id.in_(ids))
                .group_by(schema.VersionRow.model_id)
            ).all()
        )
        for model_id, key, value in s.execute(
            select(schema.ModelTagRow.model_id, schema.ModelTagRow.key, schema.ModelTagRow.value).where(
                schema.ModelTagRow.model_id.in_(ids)
            )
        ):
            tags.setdefault(model_id, {})[key] = value
    return RecordList(
        ModelRecord(
            id=m.id,
            name=m.name,
            model_type=m.model_type,
            framework=m.framework,
            description=m.description,
            created_at=m.created_at,
            latest_version=latest.get(m.id),
            tags=tags.get(m.id, {}),
        )
        for m in models
    )


def find_models(
    s: Session,
    *,
    framework: str | None = None,
    model_type: str | None = None,
    tag: str | None = None,
    name_like: str | None = None,
) -> RecordList[ModelRecord]:
    """Models filtered by framework, type, tag (``key`` or ``key=value``) and name substring."""
    query = select(schema.ModelRow).order_by(schema.ModelRow.name)
    if framework is not None:
        query = query.where(schema.ModelRow.framework == framework)
    if model_type is not None:
        query = query.where(schema.ModelRow.model_type == model_type)
    if name_like is not None:
        query = query.where(schema.ModelRow.name.contains(name_like, autoescape=True))
    if tag is not None:
        key, _, value = tag.partition("=")
        sub = select(schema.ModelTagRow.model_id).where(schema.ModelTagRow.key == key)
        if value:
            sub = sub.where(schema.ModelTagRow.value == value)
        query = query.where(schema.ModelRow.id.in_(sub))
    return model_records(s, s.execute(query).scalars())


def summaries(s: Session, training_ids: list[int]) -> dict[int, dict[str, MetricSummary]]:
    """Metric summaries of many trainings in one query."""
    out: dict[int, dict[str, MetricSummary]] = {t: {} for t in training_ids}
    if not training_ids:
        return out
    ms, mk = schema.MetricSummaryRow, schema.MetricKeyRow
    rows = s.execute(select(ms, mk.name).join(mk, mk.id == ms.key_id).where(ms.training_id.in_(training_ids)))
    for summary, name in rows:
        out[summary.training_id][name] = summary_record(name, summary)
    return out


def summary_record(name: str, row: Any) -> MetricSummary:
    """A summary from a ``metric_summaries`` row (an ORM object or a row of its columns)."""
    return MetricSummary(
        key=name,
        count=row.count,
        last=decode_float(row.last_value, row.last_kind),
        last_step=row.last_step,
        min=decode_float(row.min_value, row.min_kind) if row.min_step is not None else None,
        min_step=row.min_step,
        max=decode_float(row.max_value, row.max_kind) if row.max_step is not None else None,
        max_step=row.max_step,
    )


def params_of(s: Session, training_ids: list[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {t: {} for t in training_ids}
    if training_ids:
        p = schema.ParamRow
        for tid, key, value in s.execute(select(p.training_id, p.key, p.value).where(p.training_id.in_(training_ids))):
            out[tid][key] = from_jsonable(value)
    return out


def dataset_record(row: schema.DatasetRow | None) -> DatasetRecord | None:
    if row is None:
        return None
    return DatasetRecord(
        id=row.id,
        name=row.name,
        digest=row.digest,
        n_rows=row.n_rows,
        n_features=row.n_features,
        shape=row.shape,
        features=row.features,
        source=row.source,
    )


def training_records(
    s: Session, rows: Sequence[tuple[schema.TrainingRow, str, int | None]]
) -> RecordList[TrainingRecord]:
    ids = [t.id for t, _, _ in rows]
    params = params_of(s, ids)
    metrics = summaries(s, ids)
    stages = stages_of(s, ids)
    dataset_ids = {t.dataset_id for t, _, _ in rows if t.dataset_id is not None}
    datasets = (
        {d.id: d for d in s.execute(select(schema.DatasetRow).where(schema.DatasetRow.id.in_(dataset_ids))).scalars()}
        if dataset_ids
        else {}
    )
    return RecordList(
        TrainingRecord(
            id=t.id,
            uuid=t.uuid,
            model=model_name,
            status=t.status,
            started_at=t.started_at,
            ended_at=t.ended_at,
            duration_s=t.duration_s,
            version=number,
            dataset=dataset_record(datasets.get(t.dataset_id)) if t.dataset_id else None,
            artifact_path=t.artifact_path,
            artifact_sha256=t.artifact_sha256,
            artifact_size=t.artifact_size,
            error=t.error,
            run_by=t.run_by,
            host=t.host,
            git_commit=t.git_commit,
            context=t.context or {},
            params=params[t.id],
            metrics=metrics[t.id],
            stages=stages[t.id],
        )
        for t, model_name, number in rows
    )


def stages_of(s: Session, training_ids: list[int]) -> dict[int, list[StageRecord]]:
    out: dict[int, list[StageRecord]] = {t: [] for t in training_ids}
    if training_ids:
        st = schema.StageRow
        for row in s.execute(select(st).where(st.training_id.in_(training_ids)).order_by(st.training_id, st.position)):
            stage = row[0]
            out[stage.training_id].append(
                StageRecord(
                    name=stage.name,
                    position=stage.position,
                    status=stage.status,
                    started_at=stage.started_at,
                    ended_at=stage.ended_at,
                    duration_s=stage.duration_s,
                    error=stage.error,
                    params=from_jsonable(stage.params or {}),
                )
            )
    return out


def trainings(
    s: Session,
    model_ref: Any = None,
    *,
    status: str | None = None,
    where: str | None = None,
    order_by: str | None = None,
    limit: int | None = None,
) -> RecordList[TrainingRecord]:
    """Trainings of one model (or all), by status and a filter (:mod:`modeltrail._read.search`), oldest first.

    ``order_by`` (``"metrics.val_auc desc, started_at"``) sorts with missing values last; ties and
    the default order are by start time then id.
    """
    from . import search  # its parser is needed only by searches

    if limit is not None:
        check_limit(limit)
    t, m, v = schema.TrainingRow, schema.ModelRow, schema.VersionRow
    query = select(t, m.name, v.number).join(m, m.id == t.model_id).outerjoin(v, v.training_id == t.id)
    model_id = None
    if model_ref is not None:
        model_id = resolve_model(s, model_ref).id
        query = query.where(t.model_id == model_id)
    if status is not None:
        if status not in TRAINING_STATUSES:
            raise ValidationError(f"status is one of {', '.join(TRAINING_STATUSES)}, got {status!r}", value=status)
        query = query.where(t.status == status)
    for name, text in (("where", where), ("order_by", order_by)):
        if text is not None and not isinstance(text, str):
            raise ValidationError(f"{name} takes the filter language as a string, got {text!r}", value=text)
    goal_of = _goal_lookup(s, model_id)
    if where is not None and where.strip():
        query = query.where(search.where_clause(where, goal_of=goal_of))
    order = search.order_clauses(order_by, goal_of=goal_of) if order_by is not None and order_by.strip() else []
    query = query.order_by(*order, t.started_at, t.id)
    if limit is not None:
        query = query.limit(limit)
    return training_records(s, [(r[0], r[1], r[2]) for r in s.execute(query)])


def _goal_lookup(s: Session, model_id: int | None) -> Callable[[str], str | None]:
    """Which way is better for a metric in a search: the one model's declared goal, else the name's.

    Across models a declared goal counts only when every model that declared one agrees.
    """
    from .ranking import infer_goal

    def goal_of(metric: str) -> str | None:
        g = schema.MetricGoalRow
        query = select(g.goal).where(g.metric == metric).distinct()
        if model_id is not None:
            query = query.where(g.model_id == model_id)
        declared = list(s.execute(query).scalars())
        return declared[0] if len(declared) == 1 else infer_goal(metric) if not declared else None

    return goal_of


def training_counts(s: Session, model_ref: Any) -> TrainingCounts:
    """How many trainings the model has by status, and how many of each have no version."""
    model = resolve_model(s, model_ref)
    t, v = schema.TrainingRow, schema.VersionRow
    query = (
        select(t.status, v.id.is_(None), func.count(t.id))
        .outerjoin(v, v.training_id == t.id)
        .where(t.model_id == model.id)
        .group_by(t.status, v.id.is_(None))
    )
    by_status: dict[str, int] = {}
    without: dict[str, int] = {}
    for status, unversioned, n in s.execute(query):
        by_status[status] = by_status.get(status, 0) + n
        if unversioned:
            without[status] = without.get(status, 0) + n
    return TrainingCounts(model=model.name, total=sum(by_status.values()), by_status=by_status, without_version=without)


def training(s: Session, training_id: int) -> TrainingRecord:
    t, m, v = schema.TrainingRow, schema.ModelRow, schema.VersionRow
    query = select(t, m.name, v.number).join(m, m.id == t.model_id).outerjoin(v, v.training_id == t.id)
    rows = [(r[0], r[1], r[2]) for r in s.execute(query.where(t.id == training_id))]
    if not rows:
        raise NotFoundError(f"no training with id {training_id!r}", value=training_id)
    return training_records(s, rows)[0]


def trainings_by_id(s: Session, training_ids: Sequence[int]) -> dict[int, TrainingRecord]:
    """Many trainings by id, in a fixed number of queries."""
    if not training_ids:
        return {}
    t, m, v = schema.TrainingRow, schema.ModelRow, schema.VersionRow
    query = select(t, m.name, v.number).join(m, m.id == t.model_id).outerjoin(v, v.training_id == t.id)
    rows = [tuple(r) for r in s.execute(query.where(t.id.in_(list(training_ids))))]
    return {r.id: r for r in training_records(s, rows)}  # type: ignore[arg-type]


def versions(s: Session, model_ref: Any) -> RecordList[VersionRecord]:
    """Every version of a model, by number; read as plain rows, not ORM objects (10,000 versions is common)."""
    model = resolve_model(s, model_ref)
    v = schema.VersionRow
    rows = s.execute(
        select(v.id, v.number, v.training_id, v.parent_id, v.artifact_path, v.param_diff, v.created_at)
        .where(v.model_id == model.id)
        .order_by(v.number)
    ).all()
    number_of = {r.id: r.number for r in rows}
    return RecordList(version_record(model.name, r, number_of.get(r.parent_id) if r.parent_id else None) for r in rows)


def metric_key_id(s: Session, metric: str) -> int | None:
    """The id of metric name ``metric``; None when nothing ever logged it."""
    check_metric_key(metric)
    return s.execute(select(schema.MetricKeyRow.id).where(schema.MetricKeyRow.name == metric)).scalar_one_or_none()


# ------------------------------------------------------------------ details
def model_details(s: Session, model_ref: Any) -> ModelDetails:
    """A model with each version, the training behind it (dataset, artifact, params, metrics) and where it serves."""
    model = resolve_model(s, model_ref)
    record = model_records(s, [model])[0]
    rows = versions(s, model.id)
    found = trainings_by_id(s, [r.training_id for r in rows])
    serving = active_environments(s, model.id)
    return ModelDetails(
        model=record,
        versions=RecordList(
            VersionDetails(version=r, training=found[r.training_id], environments=serving.get(r.id, [])) for r in rows
        ),
        deployments=deployments(s, model.id, status=ACTIVE),
    )


# ------------------------------------------------------------------ histories
def _curve_point(
    model: str, version: int, training_id: int, metric: str, step: int, value: float, ts: float
) -> CurvePoint:
    return CurvePoint(
        model=model,
        version=version,
        training_id=training_id,
        metric=metric,
        step=step,
        value=value,
        timestamp=dt.datetime.fromtimestamp(ts, dt.timezone.utc),
    )


def metric_curves(
    s: Session, model_ref: Any, metric: str, *, versions: Sequence[int] | None = None, max_points: int | None = None
) -> RecordList[CurvePoint]:
    """Every point of ``metric`` in every version (or the given ones), by version then step.

    With ``max_points``, each version's curve downsampled (:func:`modeltrail._read.history.downsample`).
    """
    model = resolve_model(s, model_ref)
    if max_points is not None:
        history.check_points(max_points)
    key_id = metric_key_id(s, metric)
    if key_id is None:
        return RecordList()
    if max_points is not None:
        v, ms = schema.VersionRow, schema.MetricSummaryRow
        found = (
            select(v.number, v.training_id, ms.count)
            .join(ms, and_(ms.training_id == v.training_id, ms.key_id == key_id))
            .where(v.model_id == model.id)
        )
        if versions is not None:
            found = found.where(v.number.in_([resolve_version(s, model, n).number for n in versions]))
        return RecordList(
            _curve_point(model.name, number, tid, metric, step, value, ts)
            for number, tid, count in s.execute(found.order_by(v.number)).all()
            for step, value, ts in history.downsample(s, tid, key_id, count, max_points)[1]
        )
    v, mp = schema.VersionRow, schema.MetricPointRow
    query = (
        select(v.number, v.training_id, mp.step, mp.value, mp.kind, mp.ts)
        .join(mp, and_(mp.training_id == v.training_id, mp.key_id == key_id))
        .where(v.model_id == model.id)
    )
    if versions is not None:
        numbers = [resolve_version(s, model, n).number for n in versions]
        query = query.where(v.number.in_(numbers))
    rows = s.execute(query.order_by(v.number, mp.step, mp.seq))
    return RecordList(
        _curve_point(model.name, number, tid, metric, step, decode_float(value, kind), ts)
        for number, tid, step, value, kind, ts in rows
    )


def version_history(
    s: Session, model_ref: Any, version: int | None = None, *, metrics: Sequence[str] | None = None
) -> RecordList[CurvePoint]:
    """Every metric point of one version (the latest by default), by metric then step."""
    model = resolve_model(s, model_ref)
    row = resolve_version(s, model, version)
    mp, mk = schema.MetricPointRow, schema.MetricKeyRow
    query = (
        select(mk.name, mp.step, mp.value, mp.kind, mp.ts)
        .join(mk, mk.id == mp.key_id)
        .where(mp.training_id == row.training_id)
    )
    if metrics is not None:
        query = query.where(mk.name.in_([check_metric_key(m) for m in metrics]))
    rows = s.execute(query.order_by(mk.name, mp.step, mp.seq))
    return RecordList(
        _curve_point(model.name, row.number, row.training_id, name, step, decode_float(value, kind), ts)
        for name, step, value, kind, ts in rows
    )
