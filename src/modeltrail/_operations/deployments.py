"""Deployment writes: deploy, rollback, undeploy, and metrics measured in production.

These are the only writes outside a training. Each runs in one transaction through
:meth:`Store.run` and starts by locking the model row, so two deploys to one environment
queue behind each other and leave exactly one active deployment; the audit event is
written in the same transaction.

A deployment row is never deleted and only its ``status`` and ``ended_at`` ever change:
an environment's timeline is the history of what served there. The reads are in
:mod:`modeltrail._read.deployments`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._audit import record_event
from .._context import os_identity
from .._errors import NotFoundError, ValidationError
from .._records import DeploymentRecord
from .._rows import (
    ACTIVE,
    DEPLOY,
    RETIRED,
    ROLLBACK,
    ROLLED_BACK,
    SUPERSEDED,
    UNDEPLOY,
    active_deployment_query,
    deployment_query,
    deployment_record,
    deployment_records,
    resolve_model,
    resolve_version,
)
from .._values import USER_MAX, check_environment, check_metrics, check_text, encode_float
from .metrics import metric_key_ids

if TYPE_CHECKING:
    from .._store import Store


def _inputs(
    environment: Any, reason: Any, deployed_by: Any, endpoint: Any = None
) -> tuple[str, str | None, str | None, str]:
    """What every timeline change takes, checked before any SQL: environment, endpoint, reason and who."""
    environment = check_environment(environment)
    endpoint = check_text("endpoint", endpoint)
    reason = check_text("reason", reason)
    who = check_text("deployed_by", deployed_by, USER_MAX) or os_identity()[0][:USER_MAX]
    return environment, endpoint, reason, who


def _locked_active(s: Session, model_id: int, environment: str) -> schema.DeploymentRow | None:
    d = schema.DeploymentRow
    query = (
        select(d)
        .where(d.model_id == model_id, d.environment == environment, d.status == ACTIVE)
        .order_by(d.id.desc())
        .with_for_update()
    )
    return s.execute(query).scalars().first()


def _end(s: Session, row: schema.DeploymentRow, status: str, now: dt.datetime) -> None:
    s.execute(update(schema.DeploymentRow).where(schema.DeploymentRow.id == row.id).values(status=status, ended_at=now))


def _snapshot(row: schema.DeploymentRow, version: int, model: str) -> dict[str, Any]:
    return {
        "model": model,
        "version": version,
        "environment": row.environment,
        "status": row.status,
        "action": row.action,
        "endpoint": row.endpoint,
        "deployment_id": row.id,
    }


def _version_numbers(s: Session, version_ids: set[int]) -> dict[int, int]:
    if not version_ids:
        return {}
    v = schema.VersionRow
    return {i: n for i, n in s.execute(select(v.id, v.number).where(v.id.in_(version_ids)))}


def _change(
    s: Session,
    store: Store,
    model: schema.ModelRow,
    ending: tuple[schema.DeploymentRow, int, str] | None,
    entry: tuple[int, int, str | None, str],
    *,
    environment: str,
    reason: str | None,
    who: str,
    restores_id: int | None = None,
) -> DeploymentRecord:
    """One timeline change, with its audit event in the same transaction.

    ``ending`` is the entry active now (row, its version number, the status it ends with), if any;
    ``entry`` the new one (version id, version number, endpoint, action). An undeploy's entry is
    retired the moment it is written; a rollback's names what it rolled back and what it restores.
    """
    now = schema.utcnow()
    before = None
    if ending is not None:
        current, current_number, ended_as = ending
        before = _snapshot(current, current_number, model.name)
        _end(s, current, ended_as, now)
    version_id, number, endpoint, action = entry
    replaces_id = ending[0].id if ending is not None else None
    row = schema.DeploymentRow(
        model_id=model.id,
        version_id=version_id,
        environment=environment,
        endpoint=endpoint,
        status=RETIRED if action == UNDEPLOY else ACTIVE,
        action=action,
        deployed_at=now,
        ended_at=now if action == UNDEPLOY else None,
        deployed_by=who,
        reason=reason,
        replaces_id=replaces_id,
        rollback_of_id=replaces_id if action == ROLLBACK else None,
    )
    s.add(row)
    s.flush()
    noted = (
        {"reason": reason, "by": who}
        if restores_id is None
        else {"reason": reason, "by": who, "restores_id": restores_id}
    )
    record_event(
        s,
        store,
        action=f"deployment.{row.action}",
        entity="deployment",
        entity_id=row.id,
        before=before,
        after={**_snapshot(row, number, model.name), **noted},
    )
    return deployment_record(row, number, model.name)


def deploy(
    s: Session,
    store: Store,
    model_ref: Any,
    version: int,
    environment: str,
    *,
    endpoint: str | None = None,
    reason: str | None = None,
    deployed_by: str | None = None,
) -> DeploymentRecord:
    """Make ``version`` the active deployment of ``environment``; the one it replaces becomes superseded."""
    environment, endpoint, reason, who = _inputs(environment, reason, deployed_by, endpoint)
    if version is None:
        raise ValidationError("deploy needs a version number", value=version)
    model = resolve_model(s, model_ref, for_update=True)  # first statement: serialises deploys of this model
    target = resolve_version(s, model, version)
    previous = _locked_active(s, model.id, environment)
    ending = None
    if previous is not None:
        ending = (previous, _version_numbers(s, {previous.version_id})[previous.version_id], SUPERSEDED)
    entry = (target.id, target.number, endpoint, DEPLOY)
    return _change(s, store, model, ending, entry, environment=environment, reason=reason, who=who)


def rollback_stack(timeline: Sequence[schema.DeploymentRow]) -> list[schema.DeploymentRow]:
    """Replay an environment's timeline (oldest first) into the stack a rollback pops.

    A deploy pushes; a rollback pops what it rolled back and stands in for the entry it
    restored (so the next rollback walks further back); an undeploy empties the stack.
    """
    stack: list[schema.DeploymentRow] = []
    for row in timeline:
        if row.action == DEPLOY:
            stack.append(row)
        elif row.action == ROLLBACK:
            if stack:
                stack.pop()
            if stack:
                stack[-1] = row
            else:
                stack.append(row)
        elif row.action == UNDEPLOY:
            stack.clear()
    return stack


def _nothing_deployed(model: schema.ModelRow, environment: str) -> NotFoundError:
    return NotFoundError(f"nothing of model {model.name!r} is deployed in {environment!r}", value=environment)


def rollback(
    s: Session,
    store: Store,
    model_ref: Any,
    environment: str,
    *,
    reason: str | None = None,
    deployed_by: str | None = None,
) -> DeploymentRecord:
    """Return ``environment`` to the version active before the current one, as a new deployment."""
    environment, _, reason, who = _inputs(environment, reason, deployed_by)
    model = resolve_model(s, model_ref, for_update=True)
    d = schema.DeploymentRow
    timeline = list(
        s.execute(
            select(d).where(d.model_id == model.id, d.environment == environment).order_by(d.id).with_for_update()
        ).scalars()
    )
    stack = rollback_stack(timeline)
    current = next((row for row in reversed(timeline) if row.status == ACTIVE), None)
    if current is None:
        raise _nothing_deployed(model, environment)
    if not stack or stack[-1].id != current.id:  # history edited by hand: trust the active row alone
        stack = [current]
    stack.pop()
    if not stack:
        raise NotFoundError(
            f"nothing to roll back to: {environment!r} had no earlier deployment of {model.name!r} "
            "before the current one",
            value=environment,
        )
    target = stack[-1]
    numbers = _version_numbers(s, {current.version_id, target.version_id})
    ending = (current, numbers[current.version_id], ROLLED_BACK)
    entry = (target.version_id, numbers[target.version_id], target.endpoint, ROLLBACK)
    return _change(
        s, store, model, ending, entry, environment=environment, reason=reason, who=who, restores_id=target.id
    )


def undeploy(
    s: Session,
    store: Store,
    model_ref: Any,
    environment: str,
    *,
    version: int | None = None,
    reason: str | None = None,
    deployed_by: str | None = None,
) -> DeploymentRecord:
    """Retire what serves ``environment`` (only if it is ``version``, when given); recorded as its own entry."""
    environment, _, reason, who = _inputs(environment, reason, deployed_by)
    model = resolve_model(s, model_ref, for_update=True)
    expected = resolve_version(s, model, version) if version is not None else None
    current = _locked_active(s, model.id, environment)
    if current is None:
        raise _nothing_deployed(model, environment)
    number = _version_numbers(s, {current.version_id})[current.version_id]
    if expected is not None and expected.id != current.version_id:
        raise ValidationError(
            f"{environment!r} serves version {number} of {model.name!r}, not version {version}", value=version
        )
    entry = (current.version_id, number, current.endpoint, UNDEPLOY)
    return _change(s, store, model, (current, number, RETIRED), entry, environment=environment, reason=reason, who=who)


# ------------------------------------------------------------ production metrics
def log_production_metrics(
    s: Session,
    store: Store,
    model_ref: Any,
    environment: str,
    metrics: Mapping[str, Any],
    *,
    measured_at: dt.datetime | None = None,
    deployment_id: int | None = None,
) -> DeploymentRecord:
    """Record metrics measured in production against the active deployment (or ``deployment_id``)."""
    environment = check_environment(environment)
    values = check_metrics(metrics)
    if measured_at is None:
        moment = schema.utcnow()
    elif isinstance(measured_at, dt.datetime) and measured_at.tzinfo is not None:
        moment = measured_at.astimezone(dt.timezone.utc)
    else:
        raise ValidationError(f"measured_at must be a timezone-aware datetime, got {measured_at!r}", value=measured_at)
    model = resolve_model(s, model_ref)
    d = schema.DeploymentRow
    if deployment_id is None:
        rows = s.execute(active_deployment_query(model.id, environment)).all()
        if not rows:
            raise _nothing_deployed(model, environment)
    else:
        if isinstance(deployment_id, bool) or not isinstance(deployment_id, int):
            raise ValidationError(f"deployment_id must be an integer, got {deployment_id!r}", value=deployment_id)
        rows = s.execute(
            deployment_query().where(d.id == deployment_id, d.model_id == model.id, d.environment == environment)
        ).all()
        if not rows:
            raise NotFoundError(
                f"no deployment {deployment_id} of {model.name!r} in {environment!r}", value=deployment_id
            )
    deployment = deployment_records(rows)[0]
    key_ids = metric_key_ids(s, values)
    points = []
    for key, value in values.items():
        stored, kind = encode_float(value)
        points.append(
            {
                "deployment_id": deployment.id,
                "key_id": key_ids[key],
                "value": stored,
                "kind": kind,
                "measured_at": moment,
            }
        )
    s.execute(insert(schema.ProductionMetricRow), points)
    return deployment
