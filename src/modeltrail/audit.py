"""The append-only audit trail: who did what, when, and what it changed.

Only :func:`record_event` writes here, always inside the transaction of the change
it describes, so an event exists exactly when its change does.
"""

from __future__ import annotations

import getpass
import socket
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from . import schema
from .values import MAX_DEPTH, to_jsonable

AUDIT_DEPTH = MAX_DEPTH + 6

if TYPE_CHECKING:
    from .store import Store


@lru_cache(maxsize=1)
def os_identity() -> tuple[str, str]:
    """(OS user, host) of this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return user, socket.gethostname()


def record_event(
    session: Session,
    store: Store,
    *,
    action: str,
    entity: str,
    entity_id: object,
    before: Any = None,
    after: Any = None,
) -> schema.AuditEvent:
    user, host = os_identity()
    event = schema.AuditEvent(
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
