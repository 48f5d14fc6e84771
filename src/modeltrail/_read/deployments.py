"""Deployment timelines read back: what serves where now, at a past moment, and how it got there.

A deployment row is never deleted and only its ``status`` and ``ended_at`` ever change, so an
environment's timeline is the history of what served there. Production metrics hang off
deployments and are read here too. The writes are in :mod:`modeltrail._operations.deployments`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from .. import _schema as schema
from .._errors import ValidationError
from .._records import DeploymentRecord, ProductionMetricRecord, RecordList
from .._rows import (
    ACTIVE,
    UNDEPLOY,
    active_deployment_query,
    deployment_query,
    deployment_records,
    resolve_model,
    resolve_version,
)
from .._values import check_environment, check_time, decode_float


def current_deployment(s: Session, model_ref: Any, environment: str) -> DeploymentRecord | None:
    model = resolve_model(s, model_ref)
    rows = s.execute(active_deployment_query(model.id, check_environment(environment))).all()
    return deployment_records(rows)[0] if rows else None


def deployment_at_query(model_id: int, environment: str, moment: dt.datetime) -> Select:
    """The last timeline entry of ``environment`` that started by ``moment``: one index range scan, newest first."""
    d = schema.DeploymentRow
    return (
        deployment_query()
        .where(d.model_id == model_id, d.environment == environment, d.deployed_at <= moment)
        .order_by(d.deployed_at.desc(), d.id.desc())
        .limit(1)
    )


def deployment_at(s: Session, model_ref: Any, environment: str, at: Any) -> DeploymentRecord | None:
    """The deployment serving ``environment`` at moment ``at``: the last one that started by then.

    None when nothing had been deployed yet or the last change by then was an undeploy.
    """
    model = resolve_model(s, model_ref)
    rows = s.execute(deployment_at_query(model.id, check_environment(environment), check_time(at))).all()
    if not rows or rows[0][0].action == UNDEPLOY:
        return None
    return deployment_records(rows)[0]


def deployments(
    s: Session,
    model_ref: Any = None,
    *,
    environment: str | None = None,
    version: int | None = None,
    status: str | None = None,
) -> RecordList[DeploymentRecord]:
    """Timelines: per environment, oldest first. ``version`` needs a model."""
    d = schema.DeploymentRow
    query = deployment_query()
    if model_ref is not None:
        model = resolve_model(s, model_ref)
        query = query.where(d.model_id == model.id)
        if version is not None:
            query = query.where(d.version_id == resolve_version(s, model, version).id)
    elif version is not None:
        raise ValidationError("a version number needs a model", value=version)
    if environment is not None:
        query = query.where(d.environment == check_environment(environment))
    if status is not None:
        query = query.where(d.status == status)
    return deployment_records(s.execute(query.order_by(schema.ModelRow.name, d.environment, d.id)).all())


def deployments_of_version(s: Session, version_id: int) -> RecordList[DeploymentRecord]:
    """Every timeline entry of one version (by its row id), by environment then age."""
    d = schema.DeploymentRow
    return deployment_records(
        s.execute(deployment_query().where(d.version_id == version_id).order_by(d.environment, d.id)).all()
    )


def serving_versions(s: Session, version_ids: Select | Iterable[int]) -> RecordList[DeploymentRecord]:
    """The active deployments, in every environment, of these versions (row ids, or a query of them)."""
    d = schema.DeploymentRow
    wanted = version_ids if isinstance(version_ids, Select) else list(version_ids)
    query = (
        deployment_query()
        .where(d.status == ACTIVE, d.version_id.in_(wanted))
        .order_by(schema.ModelRow.name, d.environment, d.id)
    )
    return deployment_records(s.execute(query).all())


def environments_of(s: Session, model_ref: Any, version: int) -> list[str]:
    """The environments where ``version`` serves now."""
    model = resolve_model(s, model_ref)
    row = resolve_version(s, model, version)
    d = schema.DeploymentRow
    query = select(d.environment).where(d.version_id == row.id, d.status == ACTIVE).order_by(d.environment)
    return list(s.execute(query).scalars())


def active_environments(s: Session, model_id: int) -> dict[int, list[str]]:
    """Version id -> environments it serves now, for one model."""
    return serving_environments(s, model_id=model_id)


def serving_environments(
    s: Session, *, model_id: int | None = None, version_ids: Iterable[int] | None = None
) -> dict[int, list[str]]:
    """Version id -> environments it serves now, for one model's versions or for the given version ids."""
    d = schema.DeploymentRow
    query = select(d.version_id, d.environment).where(d.status == ACTIVE).order_by(d.environment)
    if model_id is not None:
        query = query.where(d.model_id == model_id)
    if version_ids is not None:
        query = query.where(d.version_id.in_(list(version_ids)))
    out: dict[int, list[str]] = {}
    for version_id, environment in s.execute(query):
        out.setdefault(version_id, []).append(environment)
    return out


def production_metrics(
    s: Session,
    model_ref: Any,
    *,
    environment: str | None = None,
    metric: str | None = None,
    version: int | None = None,
) -> RecordList[ProductionMetricRecord]:
    """Metrics measured in production, by time of measurement."""
    model = resolve_model(s, model_ref)
    pm, d, v, mk = schema.ProductionMetricRow, schema.DeploymentRow, schema.VersionRow, schema.MetricKeyRow
    query = (
        select(pm.id, pm.deployment_id, v.number, d.environment, mk.name, pm.value, pm.kind, pm.measured_at)
        .join(d, d.id == pm.deployment_id)
        .join(v, v.id == d.version_id)
        .join(mk, mk.id == pm.key_id)
        .where(d.model_id == model.id)
    )
    if environment is not None:
        query = query.where(d.environment == check_environment(environment))
    if metric is not None:
        query = query.where(mk.name == metric)
    if version is not None:
        query = query.where(d.version_id == resolve_version(s, model, version).id)
    rows = s.execute(query.order_by(pm.measured_at, pm.id))
    return RecordList(
        ProductionMetricRecord(
            id=i,
            deployment_id=dep,
            model=model.name,
            version=number,
            environment=env,
            metric=name,
            value=decode_float(value, kind),
            measured_at=at,
        )
        for i, dep, number, env, name, value, kind, at in rows
    )
