"""Serving instances read back, with ``lost`` computed here.

An instance reads ``lost`` when its row still says ``serving`` but its last heartbeat is older than
:func:`lost_after` its interval: the process was killed, hangs, or cannot reach the database. Nothing
writes ``lost``, so no reader needs write access, and an instance whose heartbeats resume (a database
outage ended) reads ``serving`` again. The clock compared is the reader's; machines are assumed to
keep time (NTP) to well under a heartbeat interval.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from .. import _schema as schema
from .._errors import NotFoundError, ValidationError
from .._records import RecordList, ServingInstanceRecord
from .._rows import resolve_model
from .._values import check_environment, check_limit

#: Heartbeats an instance may miss before it reads lost.
MISSED_BEATS = 3
#: ... but never sooner than this many seconds (a short interval on a busy machine is not a death).
LOST_AFTER_MIN_S = 2.0
STATES = ("serving", "lost", "stopped", "failed")


def lost_after(heartbeat_s: float) -> float:
    """Seconds without a heartbeat after which an instance beating every ``heartbeat_s`` reads lost."""
    return max(MISSED_BEATS * heartbeat_s, LOST_AFTER_MIN_S)


def state_of(row: schema.ServingInstanceRow, now: dt.datetime) -> str:
    if row.ended_at is not None or row.state != "serving":
        return row.state
    silent = (now - row.heartbeat_at).total_seconds()
    return "lost" if silent > lost_after(row.heartbeat_s) else "serving"


def _query() -> Select:
    """Instances with their model's name and the number of the version they serve."""
    i, m, v = schema.ServingInstanceRow, schema.ModelRow, schema.VersionRow
    return select(i, m.name, v.number).join(m, m.id == i.model_id).join(v, v.id == i.version_id)


def instances(
    s: Session,
    model_ref: Any = None,
    *,
    environment: str | None = None,
    state: str | None = None,
    limit: int | None = 100,
) -> RecordList[ServingInstanceRecord]:
    """Serving instances, newest first, of one model (or all), one environment, in one state."""
    if state is not None and state not in STATES:
        raise ValidationError(f"state must be one of {', '.join(STATES)}, got {state!r}", value=state)
    if limit is not None:
        check_limit(limit)
    i = schema.ServingInstanceRow
    query = _query()
    if model_ref is not None:
        query = query.where(i.model_id == resolve_model(s, model_ref).id)
    if environment is not None:
        query = query.where(i.environment == check_environment(environment))
    # The stored state narrows the query; lost and serving share a stored state and are told apart below.
    if state in ("stopped", "failed"):
        query = query.where(i.state == state)
    elif state in ("serving", "lost"):
        query = query.where(i.state == "serving", i.ended_at.is_(None))
    query = query.order_by(i.started_at.desc(), i.id.desc())
    now = schema.utcnow()
    found: RecordList[ServingInstanceRecord] = RecordList()
    for row, model, number in s.execute(query):
        record = instance_record(row, model, number, now)
        if state is not None and record.state != state:
            continue
        found.append(record)
        if limit is not None and len(found) >= limit:
            break
    return found


def instance_record(
    row: schema.ServingInstanceRow, model: str, version: int, now: dt.datetime
) -> ServingInstanceRecord:
    return ServingInstanceRecord(
        id=row.id,
        uuid=row.uuid,
        model=model,
        environment=row.environment,
        version=version,
        deployment_id=row.deployment_id,
        host=row.host,
        port=row.port,
        pid=row.pid,
        state=state_of(row, now),
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
        heartbeat_s=row.heartbeat_s,
        lost_after_s=lost_after(row.heartbeat_s),
    )


def instance(s: Session, instance_id: int) -> ServingInstanceRecord:
    found = s.execute(_query().where(schema.ServingInstanceRow.id == instance_id)).first()
    if found is None:
        raise NotFoundError(f"no serving instance {instance_id}", value=instance_id)
    return instance_record(found[0], found[1], found[2], schema.utcnow())
