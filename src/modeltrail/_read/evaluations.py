"""Evaluations read back: the metrics an existing version scored on a named (or fingerprinted) dataset.

The writes are in :mod:`modeltrail._operations.evaluations`; rankings by evaluation are in
:mod:`modeltrail._read.ranking`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from .. import _schema as schema
from .._records import EvaluationRecord, RecordList
from .._rows import resolve_model, resolve_version
from .._values import check_dataset_name, decode_float


def evaluation_query() -> Select:
    """Evaluations with their version number, model name and dataset digest: what :func:`evaluation_records` reads."""
    e, v, m, d = schema.EvaluationRow, schema.VersionRow, schema.ModelRow, schema.DatasetRow
    return (
        select(e, v.number, m.name, d.digest)
        .join(v, v.id == e.version_id)
        .join(m, m.id == v.model_id)
        .outerjoin(d, d.id == e.dataset_id)
    )


def evaluation_records(s: Session, query: Select) -> RecordList[EvaluationRecord]:
    """Records from a query over (Evaluation, version number, model name, dataset digest)."""
    rows = s.execute(query).all()
    metrics: dict[int, dict[str, float]] = {row[0].id: {} for row in rows}
    if metrics:
        em, mk = schema.EvaluationMetricRow, schema.MetricKeyRow
        for evaluation_id, name, value, kind in s.execute(
            select(em.evaluation_id, mk.name, em.value, em.kind)
            .join(mk, mk.id == em.key_id)
            .where(em.evaluation_id.in_(list(metrics)))
            .order_by(em.evaluation_id, mk.name)
        ):
            metrics[evaluation_id][name] = decode_float(value, kind)
    return RecordList(
        EvaluationRecord(
            id=e.id,
            uuid=e.uuid,
            model=model_name,
            version=number,
            dataset=e.dataset_name,
            dataset_digest=digest,
            evaluated_at=e.evaluated_at,
            evaluated_by=e.evaluated_by,
            description=e.description,
            metrics=metrics[e.id],
        )
        for e, number, model_name, digest in rows
    )


def evaluations(
    s: Session, model_ref: Any, *, version: int | None = None, dataset: str | None = None
) -> RecordList[EvaluationRecord]:
    """A model's evaluations (of one version, on one dataset), by version then time."""
    model = resolve_model(s, model_ref)
    e, v = schema.EvaluationRow, schema.VersionRow
    query = evaluation_query().where(v.model_id == model.id)
    if version is not None:
        query = query.where(e.version_id == resolve_version(s, model, version).id)
    if dataset is not None:
        query = query.where(e.dataset_name == check_dataset_name(dataset))
    return evaluation_records(s, query.order_by(v.number, e.evaluated_at, e.id))


def evaluations_of_version(s: Session, version_id: int) -> RecordList[EvaluationRecord]:
    """Every evaluation of one version (by its row id), oldest first."""
    e = schema.EvaluationRow
    return evaluation_records(s, evaluation_query().where(e.version_id == version_id).order_by(e.evaluated_at, e.id))


def latest_evaluations(
    s: Session, model: schema.ModelRow, numbers: Sequence[int] | None = None
) -> dict[tuple[int, str], EvaluationRecord]:
    """(version number, dataset) -> the latest evaluation of that version on that dataset."""
    latest: dict[tuple[int, str], EvaluationRecord] = {}
    e, v = schema.EvaluationRow, schema.VersionRow
    query = evaluation_query().where(v.model_id == model.id)
    if numbers is not None:
        query = query.where(v.number.in_(list(numbers)))
    for record in evaluation_records(s, query.order_by(e.evaluated_at, e.id)):
        latest[(record.version, record.dataset)] = record  # later rows replace earlier ones
    return latest
