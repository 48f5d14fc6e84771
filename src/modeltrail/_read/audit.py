"""The audit trail read back, newest first; :mod:`modeltrail._audit` is its only writer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._records import AuditRecord, RecordList
from .._values import check_limit, check_time


def audit_events(
    s: Session,
    *,
    action: str | None = None,
    entity: str | None = None,
    entity_id: Any = None,
    since: Any = None,
    limit: int = 100,
) -> RecordList[AuditRecord]:
    """Audit events, newest first. ``action`` ending in ``*`` matches a prefix (``deployment.*``)."""
    check_limit(limit)
    a = schema.AuditEventRow
    query = select(a)
    if action is not None:
        if action.endswith("*"):
            query = query.where(a.action.startswith(action[:-1], autoescape=True))
        else:
            query = query.where(a.action == action)
    if entity is not None:
        query = query.where(a.entity == entity)
    if entity_id is not None:
        query = query.where(a.entity_id == str(entity_id))
    if since is not None:
        query = query.where(a.at >= check_time(since, day_end=False))
    rows = s.execute(query.order_by(a.id.desc()).limit(limit)).scalars()
    return RecordList(
        AuditRecord(
            id=r.id,
            at=r.at,
            action=r.action,
            entity=r.entity,
            entity_id=r.entity_id,
            db_user=r.db_user,
            os_user=r.os_user,
            host=r.host,
            before=r.before,
            after=r.after,
        )
        for r in rows
    )
