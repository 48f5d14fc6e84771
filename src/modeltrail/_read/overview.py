"""What the dashboard reads beyond the other queries, in a fixed number of queries per page.

A model page with 1,000 versions must render in well under 300 ms, so the versions table
is read as three narrow queries (versions with their trainings, the chosen metrics' summaries,
the serving environments) instead of one full training record per version. Metric histories
can hold millions of points; charts get at most ``max_points`` of them per series, every
``stride``-th point picked in the database, so a long history never crosses the wire whole.

Every function takes an open read-only session and returns detached records from ``_records``;
names and filters only reach SQL as bound parameters. ``Tracker`` wraps each in a transaction.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._errors import NotFoundError, ValidationError
from .._records import (
    AuditOptions,
    FilterOptions,
    MetricInfo,
    ModelPage,
    ModelRecord,
    ModelSummary,
    Series,
    VersionLine,
)
from .._rows import ACTIVE
from .._values import decode_float
from . import history, queries
from .deployments import active_environments, deployments
from .ranking import UNKNOWN, metric_goals

#: Metric columns of the versions table: the metrics most versions logged.
KEY_METRICS_MAX = 6
#: Points of one chart series; longer histories are thinned to every n-th point.
SERIES_POINTS_MAX = 1000
#: Versions drawn on one step-curve chart.
CURVES_MAX = 12
#: The metric a timed stage logs its duration as: ``<stage>.duration_s``.
STAGE_SUFFIX = ".duration_s"
#: Below this many points in all, a training's histories are read in one query.
ONE_QUERY_POINTS_MAX = 20_000


# ------------------------------------------------------------------ models
def environments_by_model(s: Session) -> dict[int, dict[str, int]]:
    """Model id -> {environment: version number serving there now}, for every model in one query."""
    d, v = schema.DeploymentRow, schema.VersionRow
    out: dict[int, dict[str, int]] = {}
    query = (
        select(d.model_id, d.environment, v.number)
        .join(v, v.id == d.version_id)
        .where(d.status == ACTIVE)
        .order_by(d.model_id, d.environment, d.id)
    )
    for model_id, environment, number in s.execute(query):
        out.setdefault(model_id, {})[environment] = number
    return out


def model_summaries(s: Session, models: list[ModelRecord]) -> list[ModelSummary]:
    serving = environments_by_model(s)
    return [summary_of(m, serving.get(m.id, {})) for m in models]


def summary_of(m: ModelRecord, environments: dict[str, int]) -> ModelSummary:
    values = {f.name: getattr(m, f.name) for f in dataclasses.fields(m)}
    return ModelSummary(**{**values, "tags": dict(m.tags), "environments": dict(environments)})


def filter_options(s: Session) -> FilterOptions:
    """Distinct frameworks, types and tags (``key=value``), for the list's filter menus."""
    m, t = schema.ModelRow, schema.ModelTagRow

    def distinct(column: Any) -> list[str]:
        return [v for v in s.execute(select(column).where(column.is_not(None)).distinct().order_by(column)).scalars()]

    tags = [
        f"{key}={value}" if value else key
        for key, value in s.execute(select(t.key, t.value).distinct().order_by(t.key, t.value))
    ]
    return FilterOptions(frameworks=distinct(m.framework), model_types=distinct(m.model_type), tags=tags)


# ------------------------------------------------------------------ one model
def model_metrics(s: Session, model_id: int) -> list[MetricInfo]:
    """Every metric the model's versions logged, most widely logged first, stage timings after the rest."""
    v, ms, mk = schema.VersionRow, schema.MetricSummaryRow, schema.MetricKeyRow
    count = func.count(ms.id)
    query = (
        select(mk.name, count)
        .select_from(v)
        .join(ms, ms.training_id == v.training_id)
        .join(mk, mk.id == ms.key_id)
        .where(v.model_id == model_id)
        .group_by(mk.name)
        .order_by(count.desc(), mk.name)
    )
    counts = dict(s.execute(query).tuples().all())
    goals = metric_goals(s, model_id, counts)
    found = [MetricInfo(name=name, versions=n, mode=goals[name] or UNKNOWN) for name, n in counts.items()]
    # Stage timings ("fit.duration_s") are metrics too, but rarely the one a table or ranking is about.
    return sorted(found, key=lambda m: (-m.versions, m.name.endswith(STAGE_SUFFIX), m.name))


def _changed_keys(diff: Any) -> list[str]:
    """The keys of a stored param diff (its values, which may carry float tags, are not needed)."""
    if not isinstance(diff, dict):
        return []
    keys: set[str] = set()
    for part in ("added", "removed", "changed"):
        value = diff.get(part)
        if isinstance(value, dict):
            keys.update(value)
    return sorted(keys)


def version_rows(s: Session, model_id: int, key_metrics: list[str]) -> list[VersionLine]:
    """Every version of a model with its training's facts and the key metrics' final values."""
    v, t = schema.VersionRow, schema.TrainingRow
    conn = s.connection()  # Core rows: a thousand versions are read without the ORM's per-row cost
    rows = conn.execute(
        select(
            v.id,
            v.number,
            v.training_id,
            v.parent_id,
            v.param_diff,
            v.created_at,
            t.status,
            t.duration_s,
            t.run_by,
            t.git_commit,
        )
        .join(t, t.id == v.training_id)
        .where(v.model_id == model_id)
        .order_by(v.number)
    ).all()
    number_of = {r.id: r.number for r in rows}
    finals: dict[int, dict[str, float]] = {}
    if key_metrics and rows:
        ms, mk = schema.MetricSummaryRow, schema.MetricKeyRow
        query = (
            select(ms.training_id, mk.name, ms.last_value, ms.last_kind)
            .select_from(v)
            .join(ms, ms.training_id == v.training_id)
            .join(mk, and_(mk.id == ms.key_id, mk.name.in_(key_metrics)))
            .where(v.model_id == model_id)
        )
        for training_id, name, value, kind in conn.execute(query).all():
            finals.setdefault(training_id, {})[name] = decode_float(value, kind)
    serving = active_environments(s, model_id)
    return [
        VersionLine(
            number=r.number,
            training_id=r.training_id,
            parent_number=number_of.get(r.parent_id) if r.parent_id else None,
            created_at=r.created_at,
            status=r.status,
            duration_s=r.duration_s,
            run_by=r.run_by,
            git_commit=r.git_commit,
            changed_params=_changed_keys(r.param_diff),
            environments=serving.get(r.id, []),
            metrics=finals.get(r.training_id, {}),
        )
        for r in rows
    ]


def model_page(s: Session, model_ref: Any) -> ModelPage:
    """A model, its metrics, its versions table and its deployment timelines, in seven queries."""
    model = queries.resolve_model(s, model_ref)
    record = queries.model_records(s, [model])[0]
    metrics = model_metrics(s, model.id)
    key_metrics = [m.name for m in metrics[:KEY_METRICS_MAX]]
    timeline = deployments(s, model.id)
    environments = {d.environment: d.version for d in timeline if d.status == ACTIVE}
    return ModelPage(
        model=summary_of(record, environments),
        metrics=metrics,
        key_metrics=key_metrics,
        versions=version_rows(s, model.id, key_metrics),
        deployments=list(timeline),
    )


# ------------------------------------------------------------------ histories
def _stride(total: int, max_points: int) -> int:
    return max(1, math.ceil(total / max_points)) if max_points > 0 else 1


def _points(
    s: Session, training_id: int, key_id: int, total: int, max_points: int
) -> tuple[int, list[tuple[int, float]]]:
    """One history whole (``max_points`` 0) or downsampled: each bucket's extremes, first and last kept."""
    stride, points = history.downsample(s, training_id, key_id, total, max_points or total)
    return stride, [(step, value) for step, value, _ in points]


def _summaries(s: Session, training_ids: list[int], metric: str | None) -> list[Any]:
    ms, mk = schema.MetricSummaryRow, schema.MetricKeyRow
    query = (
        select(ms.training_id, ms.key_id, mk.name, ms.count, ms.last_step, ms.last_value, ms.last_kind)
        .join(mk, mk.id == ms.key_id)
        .where(ms.training_id.in_(training_ids))
        .order_by(mk.name)
    )
    if metric is not None:
        query = query.where(mk.name == metric)
    return list(s.execute(query).all()) if training_ids else []


def _check_max_points(max_points: int) -> int:
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 0:
        raise ValidationError(f"max_points must be 0 (all) or a positive integer, got {max_points!r}", value=max_points)
    return max_points


def training_series(
    s: Session, training_id: int, *, metric: str | None = None, max_points: int = SERIES_POINTS_MAX
) -> list[Series]:
    """Each metric's history of one training (or only ``metric``), thinned to ``max_points`` (0: all)."""
    _check_max_points(max_points)
    if s.get(schema.TrainingRow, training_id) is None:
        raise NotFoundError(f"no training with id {training_id!r}", value=training_id)
    number = s.execute(
        select(schema.VersionRow.number).where(schema.VersionRow.training_id == training_id)
    ).scalar_one_or_none()
    found = _summaries(s, [training_id], metric)
    total = sum(r.count for r in found)
    if total <= ONE_QUERY_POINTS_MAX and all(_stride(r.count, max_points) == 1 for r in found):
        mp, mk = schema.MetricPointRow, schema.MetricKeyRow
        by_key: dict[str, list[tuple[int, float]]] = {r.name: [] for r in found}
        rows = s.execute(
            select(mk.name, mp.step, mp.value, mp.kind)
            .join(mk, mk.id == mp.key_id)
            .where(mp.training_id == training_id, mp.key_id.in_([r.key_id for r in found]))
            .order_by(mp.key_id, mp.step, mp.seq)
        )
        for name, step, value, kind in rows:
            by_key[name].append((step, decode_float(value, kind)))
        return [
            Series(
                metric=r.name, training_id=training_id, version=number, total=r.count, stride=1, points=by_key[r.name]
            )
            for r in found
        ]
    out = []
    for r in found:
        stride, points = _points(s, training_id, r.key_id, r.count, max_points)
        out.append(
            Series(metric=r.name, training_id=training_id, version=number, total=r.count, stride=stride, points=points)
        )
    return out


def curves(
    s: Session, model_ref: Any, metric: str, versions: Sequence[int] | None, *, max_points: int = SERIES_POINTS_MAX
) -> list[Series]:
    """``metric``'s history in each of ``versions`` (default: the latest that logged it), one series each."""
    _check_max_points(max_points)
    model = queries.resolve_model(s, model_ref)
    v, ms, mk = schema.VersionRow, schema.MetricSummaryRow, schema.MetricKeyRow
    if versions is None:
        latest = s.execute(
            select(v.number)
            .join(ms, ms.training_id == v.training_id)
            .join(mk, and_(mk.id == ms.key_id, mk.name == metric))
            .where(v.model_id == model.id)
            .order_by(v.number.desc())
            .limit(CURVES_MAX // 2)
        ).scalars()
        versions = sorted(latest)
    if len(versions) > CURVES_MAX:
        raise ValidationError(f"at most {CURVES_MAX} versions on one chart, got {len(versions)}", value=versions)
    rows = {n: queries.resolve_version(s, model, n) for n in dict.fromkeys(versions)}
    number_of = {row.training_id: n for n, row in rows.items()}
    out = []
    for r in _summaries(s, list(number_of), metric):
        stride, points = _points(s, r.training_id, r.key_id, r.count, max_points)
        out.append(
            Series(
                metric=metric,
                training_id=r.training_id,
                version=number_of[r.training_id],
                total=r.count,
                stride=stride,
                points=points,
            )
        )
    return sorted(out, key=lambda series: series.version or 0)


def audit_options(s: Session) -> AuditOptions:
    a = schema.AuditEventRow
    actions = list(s.execute(select(a.action).distinct().order_by(a.action)).scalars())
    entities = list(s.execute(select(a.entity).distinct().order_by(a.entity)).scalars())
    return AuditOptions(actions=actions, entities=entities)


def comparison_pair(s: Session, model_ref: Any, a: int | None, b: int | None) -> tuple[int, int, int]:
    """The model's id and the two versions a comparison shows: by default the latest against its parent."""
    row = queries.resolve_model(s, model_ref)
    if b is None:
        b = queries.resolve_version(s, row).number
    if a is None:
        parent_id = queries.resolve_version(s, row, b).parent_id
        parent = s.get(schema.VersionRow, parent_id) if parent_id else None
        a = parent.number if parent is not None else b - 1
    return row.id, a, b
