"""Evaluation writes: metrics of an existing version measured on a dataset, with their audit event.

An evaluation makes no training and no version. The reads are in :mod:`modeltrail._read.evaluations`.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuid_mod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._audit import record_event
from .._context import os_identity
from .._dataset import Dataset, dataset_row
from .._records import EvaluationRecord
from .._rows import resolve_model, resolve_version
from .._values import (
    DESCRIPTION_MAX,
    USER_MAX,
    check_dataset_name,
    check_metrics,
    check_text,
    check_time,
    encode_float,
)
from .metrics import metric_key_ids
from .trainings import get_or_create_dataset

if TYPE_CHECKING:
    from .._store import Store


def evaluate(
    s: Session,
    store: Store,
    model_ref: Any,
    version: int | None,
    *,
    dataset: Dataset | str,
    metrics: Mapping[str, Any],
    evaluated_by: str | None = None,
    description: str | None = None,
    evaluated_at: dt.datetime | None = None,
    uuid: str | None = None,
) -> EvaluationRecord:
    """Record metrics of an existing version measured on ``dataset``; no training, no new version.

    The evaluation and its audit event are one transaction. ``dataset`` is a fingerprinted
    :class:`~modeltrail.Dataset` (kept in ``datasets``, so lineage by digest finds it) or just a name.
    """
    if isinstance(dataset, Dataset):
        name, row = dataset.name, dataset_row(dataset)
    else:
        name, row = check_dataset_name(dataset), None
    values = check_metrics(metrics)
    who = check_text("evaluated_by", evaluated_by, USER_MAX) or os_identity()[0][:USER_MAX]
    description = check_text("description", description, DESCRIPTION_MAX)
    moment = schema.utcnow() if evaluated_at is None else check_time(evaluated_at)
    model = resolve_model(s, model_ref)
    target = resolve_version(s, model, version)
    dataset_id = get_or_create_dataset(s, row) if row is not None else None
    evaluation = schema.EvaluationRow(
        uuid=uuid or str(uuid_mod.uuid4()),
        version_id=target.id,
        dataset_name=name,
        dataset_id=dataset_id,
        evaluated_at=moment,
        evaluated_by=who,
        description=description,
    )
    s.add(evaluation)
    s.flush()
    add_evaluation_metrics(s, evaluation.id, values)
    record_event(
        s, store, action="evaluation.create", entity="evaluation", entity_id=evaluation.id,
        after={"model": model.name, "version": target.number, "dataset": name,
               "digest": row["digest"] if row else None, "metrics": values, "by": who},
    )  # fmt: skip
    return EvaluationRecord(
        id=evaluation.id,
        uuid=evaluation.uuid,
        model=model.name,
        version=target.number,
        dataset=name,
        dataset_digest=row["digest"] if row else None,
        evaluated_at=moment,
        evaluated_by=who,
        description=description,
        metrics=values,
    )


def add_evaluation_metrics(s: Session, evaluation_id: int, values: Mapping[str, float]) -> None:
    """Insert one evaluation's metrics (keys made on first use)."""
    key_ids = metric_key_ids(s, values)
    rows = []
    for key, value in sorted(values.items()):
        stored, kind = encode_float(value)
        rows.append({"evaluation_id": evaluation_id, "key_id": key_ids[key], "value": stored, "kind": kind})
    s.execute(insert(schema.EvaluationMetricRow), rows)
