"""Declaring which way is better for a metric of a model: one row per (model, metric) and its audit event.

Rankings read the goal in :mod:`modeltrail._read.ranking` before inferring one from the name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._audit import record_event
from .._context import os_identity
from .._errors import ValidationError
from .._records import MetricGoalRecord
from .._rows import resolve_model
from .._values import USER_MAX, check_metric_key, check_text

if TYPE_CHECKING:
    from .._store import Store

GOALS = ("max", "min")


def set_metric_goal(
    s: Session, store: Store, model_ref: Any, metric: str, goal: str, *, set_by: str | None = None
) -> MetricGoalRecord:
    """Record that ``goal`` ("max" or "min") is better for ``metric`` of the model; replaces an earlier goal."""
    check_metric_key(metric)
    if goal not in GOALS:
        raise ValidationError(f"goal must be 'max' or 'min', got {goal!r}", value=goal)
    who = check_text("set_by", set_by, USER_MAX) or os_identity()[0][:USER_MAX]
    model = resolve_model(s, model_ref, for_update=True)
    g = schema.MetricGoalRow
    row = s.execute(select(g).where(g.model_id == model.id, g.metric == metric)).scalar_one_or_none()
    before = {"metric": metric, "goal": row.goal} if row is not None else None
    if row is None:
        row = schema.MetricGoalRow(model_id=model.id, metric=metric, goal=goal, set_by=who)
        s.add(row)
    else:
        row.goal, row.set_by, row.set_at = goal, who, schema.utcnow()
    s.flush()
    record_event(
        s, store, action="model.metric_goal", entity="model", entity_id=model.id, before=before,
        after={"metric": metric, "goal": goal},
    )  # fmt: skip
    return MetricGoalRecord(model=model.name, metric=metric, goal=goal, set_at=row.set_at, set_by=who)
