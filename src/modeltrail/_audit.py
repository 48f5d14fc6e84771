"""The append-only audit trail: who did what, when, and what it changed.

Only :func:`record_event` writes here, always inside the transaction of the change
it describes, so an event exists exactly when its change does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.orm import Session

from . import _schema as schema
from ._context import os_identity
from ._values import MAX_DEPTH, to_jsonable

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

AUDIT_DEPTH = MAX_DEPTH + 6


class Ledger(Protocol):
    """What an event needs of the store it is written to (a :class:`~modeltrail._store.Store`).

    A protocol, not an import: the audit trail sits below the store in the layers.
    """

    url: URL
    dialect: str


def record_event(
    session: Session,
    store: Ledger,
    *,
    action: str,
    entity: str,
    entity_id: object,
    before: Any = None,
    after: Any = None,
) -> schema.AuditEventRow:
    user, host = os_identity()
    event = schema.AuditEventRow(
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        db_user=store.url.username or ("(file)" if store.dialect == "sqlite" else None),
        os_user=user,
        host=host,
        # Events wrap stored values (a version's param diff) in a few more levels of their own.
        before=to_jsonable(before, limit=AUDIT_DEPTH) if before is not None else None,
        after=to_jsonable(after, limit=AUDIT_DEPTH) if after is not None else None,
    )
    session.add(event)
    return event
