"""The one way a version is made: by a finished training, a JSON import or a MLflow import.

Every path locks the model row first (``SELECT ... FOR UPDATE``, before any plain read: on
InnoDB the first plain read fixes the snapshot, and it must come after the lock to see every
version committed before ours), so two processes never take the same number; a race that
still ends in a unique-key error is retried whole by :meth:`Store.run`. On a Galera cluster the
lock holds on the local node only: two trainers finishing through two nodes can both take
number N, and the unique ``(model_id, number)`` makes the second commit fail certification (a
deadlock error), retried whole the same way; its reads are causal (``wsrep_sync_wait``), so the
retry sees the winner's version and takes N + 1. Numbers stay gapless either way. Every version gets
its parent, its param diff against the parent and a ``version.create`` audit event in the
transaction that makes it, which also marks its training's metric summaries with the model
(``metric_summaries.model_id``, what the leaderboard indexes rank by). Numbers follow the order
in which versions reach the ledger (a training spooled during an outage is numbered when it is
replayed); ``created_at`` is the time the caller gives: a training's own finish time, an
imported document's time.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import _rows as rows
from .. import _schema as schema
from .._audit import record_event
from .._records import VersionRecord
from .._values import param_diff

if TYPE_CHECKING:
    from .._store import Store

#: ``parent=BELOW``: the parent is the highest number below the new version's (the default).
BELOW: Final = "below"


def lock_model(s: Session, model_id: int) -> schema.ModelRow:
    """The model row, locked until the transaction ends: take it before reading its versions."""
    return s.execute(select(schema.ModelRow).where(schema.ModelRow.id == model_id).with_for_update()).scalar_one()


def create_version(
    s: Session,
    store: Store,
    model: schema.ModelRow,
    training_id: int,
    *,
    number: int | None = None,
    parent: int | str | None = BELOW,
    artifact_path: str | None = None,
    created_at: dt.datetime | None = None,
    diff: dict[str, Any] | None = None,
) -> tuple[schema.VersionRow, int | None]:
    """Make a version of ``model`` (locked by :func:`lock_model`) for ``training_id``; (row, parent number).

    ``number=None`` takes the next number. ``parent`` is a version number, None for none, or
    :data:`BELOW`. ``diff`` is the param diff to keep (an import's); by default it is computed.
    """
    v = schema.VersionRow
    query = select(v).where(v.model_id == model.id)
    if parent != BELOW:
        query = query.where(v.number == parent)
    elif number is not None:
        query = query.where(v.number < number)
    parent_row = None
    if parent is not None:
        parent_row = s.execute(query.order_by(v.number.desc()).limit(1).with_for_update()).scalar_one_or_none()
    if number is None:
        number = (parent_row.number if parent_row else 0) + 1
    if diff is None:
        diff = param_diff(params_of(s, parent_row.training_id) if parent_row else {}, params_of(s, training_id))
    row = schema.VersionRow(
        model_id=model.id,
        number=number,
        training_id=training_id,
        parent_id=parent_row.id if parent_row else None,
        artifact_path=artifact_path,
        param_diff=diff,
        created_at=created_at or schema.utcnow(),
    )
    s.add(row)
    s.flush()
    # Summaries saved later take it from the version row (see ``metrics.save_summaries``).
    ms = schema.MetricSummaryRow
    s.execute(
        update(ms)
        .where(ms.training_id == training_id)
        .values(model_id=model.id)
        .execution_options(synchronize_session=False)
    )
    record_event(
        s, store, action="version.create", entity="version", entity_id=row.id,
        after={"model": model.name, "number": number, "training_id": training_id, "param_diff": diff},
    )  # fmt: skip
    return row, parent_row.number if parent_row else None


def version_record(s: Session, row: schema.VersionRow, *, model_name: str | None = None) -> VersionRecord:
    """The record of a version row (the model's name and the parent's number are read unless given)."""
    if model_name is None:
        model_name = s.execute(select(schema.ModelRow.name).where(schema.ModelRow.id == row.model_id)).scalar_one()
    parent_number = None
    if row.parent_id is not None:
        v = schema.VersionRow
        parent_number = s.execute(select(v.number).where(v.id == row.parent_id)).scalar()
    return rows.version_record(model_name, row, parent_number)


def params_of(s: Session, training_id: int) -> dict[str, Any]:
    rows = s.execute(
        select(schema.ParamRow.key, schema.ParamRow.value).where(schema.ParamRow.training_id == training_id)
    )
    return {key: value for key, value in rows}
