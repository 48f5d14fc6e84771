"""Rows both sides reach for: a model or version from what a caller named, and a deployment as a record.

The write side (:mod:`modeltrail._operations`) and the read side (:mod:`modeltrail._read`) never
import each other, yet both must find a model by name, a version by number and turn deployment
and version rows into records; those few helpers live here, below both. Everything takes an
open session; names reach SQL only as bound parameters.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from . import _schema as schema
from ._errors import NotFoundError, ValidationError
from ._records import DeploymentRecord, ModelRecord, RecordList, VersionRecord
from ._values import from_jsonable

#: A deployment's status: only the newest entry of an environment is ever active.
ACTIVE, SUPERSEDED, ROLLED_BACK, RETIRED = "active", "superseded", "rolled_back", "retired"
#: The change a deployment entry records.
DEPLOY, ROLLBACK, UNDEPLOY = "deploy", "rollback", "undeploy"


# ------------------------------------------------------------------ lookups
def resolve_model(s: Session, ref: Any, *, for_update: bool = False) -> schema.ModelRow:
    """A model by name, by id (int) or by a record that has one.

    ``for_update`` locks the row (``SELECT ... FOR UPDATE``): writers that must see the
    latest committed state of a model's versions or deployments take this lock first.
    """
    if isinstance(ref, ModelRecord):
        ref = ref.id
    if isinstance(ref, bool) or not isinstance(ref, (int, str)):
        raise ValidationError(f"a model is named by its name or id, got {ref!r}", value=ref)

    def one(condition: Any) -> schema.ModelRow | None:
        query = select(schema.ModelRow).where(condition)
        if for_update:
            query = query.with_for_update()
        return s.execute(query).scalar_one_or_none()

    model = None
    if isinstance(ref, str):
        model = one(schema.ModelRow.name == ref)
        if model is None and ref.isdigit() and len(ref) < 10:
            model = one(schema.ModelRow.id == int(ref))
    elif -(2**31) <= ref < 2**31:
        model = one(schema.ModelRow.id == ref)
    if model is None:
        raise NotFoundError(f"no model {ref!r}", value=ref)
    return model


def resolve_version(s: Session, model: schema.ModelRow, number: int | None = None) -> schema.VersionRow:
    """Version ``number`` of ``model``; the latest when ``number`` is None."""
    query = select(schema.VersionRow).where(schema.VersionRow.model_id == model.id)
    if number is None:
        version = s.execute(query.order_by(schema.VersionRow.number.desc()).limit(1)).scalar_one_or_none()
        if version is None:
            raise NotFoundError(f"model {model.name!r} has no versions yet", value=model.name)
        return version
    if isinstance(number, bool) or not isinstance(number, int):
        raise ValidationError(f"a version number is an integer, got {number!r}", value=number)
    version = None
    if -(2**31) <= number < 2**31:  # beyond INTEGER no version exists (and PostgreSQL would refuse the bind)
        version = s.execute(query.where(schema.VersionRow.number == number)).scalar_one_or_none()
    if version is None:
        raise NotFoundError(f"model {model.name!r} has no version {number}", value=number)
    return version


# ------------------------------------------------------------------ records
def version_record(model_name: str, row: Any, parent_number: int | None) -> VersionRecord:
    """A ``VersionRow``, or a result row with its columns, as the record users get."""
    return VersionRecord(
        id=row.id,
        model=model_name,
        number=row.number,
        training_id=row.training_id,
        parent_number=parent_number,
        artifact_path=row.artifact_path,
        param_diff=from_jsonable(row.param_diff or {"added": {}, "removed": {}, "changed": {}}),
        created_at=row.created_at,
    )


def deployment_query() -> Select:
    """Deployments with their version number and model name: the rows :func:`deployment_records` reads."""
    d, v, m = schema.DeploymentRow, schema.VersionRow, schema.ModelRow
    return select(d, v.number, m.name).join(v, v.id == d.version_id).join(m, m.id == d.model_id)


def deployment_records(rows: Any) -> RecordList[DeploymentRecord]:
    return RecordList(deployment_record(d, number, name) for d, number, name in rows)


def deployment_record(d: schema.DeploymentRow, version: int, model: str) -> DeploymentRecord:
    return DeploymentRecord(
        id=d.id,
        model=model,
        version=version,
        environment=d.environment,
        endpoint=d.endpoint,
        status=d.status,
        action=d.action,
        deployed_at=d.deployed_at,
        ended_at=d.ended_at,
        deployed_by=d.deployed_by,
        reason=d.reason,
        replaces_id=d.replaces_id,
        rollback_of_id=d.rollback_of_id,
    )


def active_deployment_query(model_id: int, environment: str) -> Select:
    """What serves ``environment`` now: served by the (model_id, environment, deployed_at) index."""
    d = schema.DeploymentRow
    return (
        deployment_query()
        .where(d.model_id == model_id, d.environment == environment, d.status == ACTIVE)
        .order_by(d.id.desc())
        .limit(1)
    )
