"""Serving instances written: a ``modeltrail serve`` process starting, beating, switching and ending.

Each call is one short transaction through :meth:`Store.run`. Start, switch and end write an audit
event (``serving.start``, ``serving.switch``, ``serving.stop``) in the same transaction; heartbeats do
not (they are the instance row's ``heartbeat_at`` only). A heartbeat also answers with what serves the
instance's environment now, so a server learns of a deploy or a rollback in the same round trip.
The reads, and how ``lost`` is computed, are in :mod:`modeltrail._read.serving`.
"""

from __future__ import annotations

import uuid as uuid_mod
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._audit import record_event
from .._errors import NotFoundError, ValidationError
from .._records import DeploymentRecord
from .._rows import active_deployment_query, deployment_query, deployment_records, resolve_model
from .._values import SHORT_MAX, check_environment, check_text

if TYPE_CHECKING:
    from .._store import Store

#: What an instance row's ``state`` may be written as (``lost`` is computed by readers, never written).
SERVING, STOPPED, FAILED = "serving", "stopped", "failed"
ENDED_STATES = (STOPPED, FAILED)


def check_instance_inputs(host: Any, port: Any, pid: Any, heartbeat_s: Any) -> tuple[str, int, int, float]:
    """Where a server listens and how often it beats, checked before any SQL."""
    host = check_text("host", host, SHORT_MAX)
    if not host:
        raise ValidationError("host must be a non-empty string", value=host)
    for name, value, top in (("port", port, 65535), ("pid", pid, 2**31 - 1)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise ValidationError(f"{name} must be an integer from 0 to {top}, got {value!r}", value=value)
    if isinstance(heartbeat_s, bool) or not isinstance(heartbeat_s, (int, float)) or not 0 < heartbeat_s <= 86400:
        raise ValidationError(
            f"heartbeat interval must be a number of seconds above 0, at most 86400, got {heartbeat_s!r}",
            value=heartbeat_s,
        )
    return host, port, pid, float(heartbeat_s)


def _snapshot(row: schema.ServingInstanceRow, model: str, version: int) -> dict[str, Any]:
    return {
        "model": model,
        "environment": row.environment,
        "version": version,
        "deployment_id": row.deployment_id,
        "host": row.host,
        "port": row.port,
        "pid": row.pid,
        "state": row.state,
    }


def _check_id(instance_id: Any) -> int:
    if isinstance(instance_id, bool) or not isinstance(instance_id, int):
        raise ValidationError(f"a serving instance is named by its id (an integer), got {instance_id!r}")
    return instance_id


def _instance(s: Session, instance_id: Any) -> schema.ServingInstanceRow:
    row = s.get(schema.ServingInstanceRow, _check_id(instance_id), with_for_update=True)
    if row is None:
        raise NotFoundError(f"no serving instance {instance_id}", value=instance_id)
    return row


def _deployment(s: Session, deployment_id: Any, model_id: int, environment: str) -> DeploymentRecord:
    d = schema.DeploymentRow
    if isinstance(deployment_id, bool) or not isinstance(deployment_id, int):
        raise ValidationError(f"deployment_id must be an integer, got {deployment_id!r}", value=deployment_id)
    rows = s.execute(
        deployment_query().where(d.id == deployment_id, d.model_id == model_id, d.environment == environment)
    ).all()
    if not rows:
        raise NotFoundError(f"no deployment {deployment_id} in {environment!r} of this model", value=deployment_id)
    return deployment_records(rows)[0]


def start_instance(
    s: Session,
    store: Store,
    model_ref: Any,
    environment: Any,
    *,
    deployment_id: int,
    host: str,
    port: int,
    pid: int,
    heartbeat_s: float,
) -> int:
    """Record a server that starts serving ``deployment_id`` of ``environment``; returns the instance id."""
    environment = check_environment(environment)
    host, port, pid, heartbeat_s = check_instance_inputs(host, port, pid, heartbeat_s)
    model = resolve_model(s, model_ref)
    deployment = _deployment(s, deployment_id, model.id, environment)
    now = schema.utcnow()
    version_id = s.execute(
        select(schema.DeploymentRow.version_id).where(schema.DeploymentRow.id == deployment.id)
    ).scalar_one()
    row = schema.ServingInstanceRow(
        uuid=str(uuid_mod.uuid4()),
        model_id=model.id,
        environment=environment,
        deployment_id=deployment.id,
        version_id=version_id,
        host=host,
        port=port,
        pid=pid,
        heartbeat_s=heartbeat_s,
        state=SERVING,
        started_at=now,
        heartbeat_at=now,
    )
    s.add(row)
    s.flush()
    after = {**_snapshot(row, model.name, deployment.version), "heartbeat_s": heartbeat_s}
    record_event(s, store, action="serving.start", entity="serving_instance", entity_id=row.id, after=after)
    return row.id


def heartbeat(s: Session, instance_id: int) -> DeploymentRecord | None:
    """Mark ``instance_id`` alive now and answer what serves its environment now (None: nothing).

    An instance that has already ended is not revived: its row keeps its end.
    """
    i = schema.ServingInstanceRow
    found = s.execute(select(i.model_id, i.environment).where(i.id == _check_id(instance_id))).first()
    if found is None:
        raise NotFoundError(f"no serving instance {instance_id}", value=instance_id)
    s.execute(update(i).where(i.id == instance_id, i.ended_at.is_(None)).values(heartbeat_at=schema.utcnow()))
    rows = s.execute(active_deployment_query(found.model_id, found.environment)).all()
    return deployment_records(rows)[0] if rows else None


def switch_instance(s: Session, store: Store, instance_id: int, deployment_id: int, *, reason: str | None) -> None:
    """Record that ``instance_id`` now serves ``deployment_id`` (a deploy or rollback it followed)."""
    reason = check_text("reason", reason)
    row = _instance(s, instance_id)
    model = s.get(schema.ModelRow, row.model_id)
    assert model is not None  # a foreign key
    target = _deployment(s, deployment_id, row.model_id, row.environment)
    number = s.execute(select(schema.VersionRow.number).where(schema.VersionRow.id == row.version_id)).scalar_one()
    before = _snapshot(row, model.name, number)
    version_id = s.execute(
        select(schema.DeploymentRow.version_id).where(schema.DeploymentRow.id == target.id)
    ).scalar_one()
    now = schema.utcnow()
    i = schema.ServingInstanceRow
    s.execute(update(i).where(i.id == row.id).values(deployment_id=target.id, version_id=version_id, heartbeat_at=now))
    row.deployment_id, row.version_id = target.id, version_id
    after = {**_snapshot(row, model.name, target.version), "reason": reason}
    record_event(
        s, store, action="serving.switch", entity="serving_instance", entity_id=row.id, before=before, after=after
    )


def end_instance(s: Session, store: Store, instance_id: int, *, state: str, reason: str | None) -> None:
    """End ``instance_id`` as ``stopped`` or ``failed`` (``reason`` says why); ending twice changes nothing."""
    if state not in ENDED_STATES:
        raise ValidationError(f"an instance ends as one of {', '.join(ENDED_STATES)}, got {state!r}", value=state)
    reason = check_text("reason", reason)
    row = _instance(s, instance_id)
    if row.ended_at is not None:
        return
    model = s.get(schema.ModelRow, row.model_id)
    assert model is not None
    number = s.execute(select(schema.VersionRow.number).where(schema.VersionRow.id == row.version_id)).scalar_one()
    before = _snapshot(row, model.name, number)
    now = schema.utcnow()
    i = schema.ServingInstanceRow
    s.execute(update(i).where(i.id == row.id).values(state=state, ended_at=now, end_reason=reason))
    row.state = state
    after = {**_snapshot(row, model.name, number), "reason": reason}
    record_event(
        s, store, action="serving.stop", entity="serving_instance", entity_id=row.id, before=before, after=after
    )
