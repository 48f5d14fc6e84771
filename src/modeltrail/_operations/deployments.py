"""Deployment writes: deploy, rollback, undeploy, and metrics measured in production.

These are the only writes outside a training. Each runs in one transaction through
:meth:`Store.run` and starts by locking the model row, so two deploys to one environment
queue behind each other and leave exactly one active deployment; the audit event is
written in the same transaction.

A deployment row is never deleted and only its ``status`` and ``ended_at`` ever change:
an environment's timeline is the history of what served there. The reads are in
:mod:`modeltrail._read.deployments`.

Safe retries. A client that loses the commit acknowledgement (the connection drops after the
server committed) cannot know whether its change happened, and calling again would deploy or
roll back a second time. Each change therefore takes two optional guards, checked under the
model lock before anything is written:

* ``expect_version``: the version the caller believes serves the environment now (the
  precondition, like HTTP's ``If-Match``). If another version serves there, a
  :class:`~modeltrail._errors.ConflictError` is raised and nothing changes.
* ``request_id``: an idempotency key the caller makes once per intended change and sends again
  on every retry of it. It is stored in the change's audit event; a call whose ``request_id``
  already answered a change among the environment's last :data:`REQUEST_WINDOW` entries returns
  that change as it stands, writing nothing, and a key reused for another change is a
  ``ConflictError``.

The request is recognised before the precondition is checked, so a retry after a lost
acknowledgement that did take effect is answered as the success it was.
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
from .._errors import ConflictError, NotFoundError, ValidationError
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

#: How many of an environment's latest entries a ``request_id`` is looked for among.
REQUEST_WINDOW = 100
#: The longest ``request_id`` (it is kept in the audit event, never in an index).
REQUEST_ID_MAX = 128


class Guard:
    """A change's retry guards, checked before any SQL: the version expected to serve now, the request id."""

    __slots__ = ("expect_version", "request_id")

    def __init__(self, expect_version: Any = None, request_id: Any = None) -> None:
        if expect_version is not None and (
            isinstance(expect_version, bool) or not isinstance(expect_version, int) or expect_version < 1
        ):
            raise ValidationError(
                f"expect_version must be a version number (an integer from 1), got {expect_version!r}",
                value=expect_version,
            )
        request_id = check_text("request_id", request_id, REQUEST_ID_MAX)
        if request_id is not None and not request_id.strip():
            raise ValidationError("request_id must not be empty", value=request_id)
        self.expect_version: int | None = expect_version
        self.request_id = request_id

    def noted(self) -> dict[str, Any]:
        """What the audit event keeps of the guards (nothing when there is no request id)."""
        return {} if self.request_id is None else {"request_id": self.request_id}

    def answered(
        self, s: Session, model: schema.ModelRow, environment: str, action: str, version: int | None = None
    ) -> DeploymentRecord | None:
        """The change an earlier call with this request id made (a retry after a lost acknowledgement), if any.

        The model row is locked, so the answer cannot change before this transaction ends. The same
        key naming another change (another action, another version) is a ConflictError.
        """
        if self.request_id is None:
            return None
        d, a = schema.DeploymentRow, schema.AuditEventRow
        recent = s.execute(
            select(d.id)
            .where(d.model_id == model.id, d.environment == environment)
            .order_by(d.id.desc())
            .limit(REQUEST_WINDOW)
        ).scalars()
        ids = [str(i) for i in recent]
        if not ids:
            return None
        events = s.execute(
            select(a.entity_id, a.action, a.after).where(a.entity == "deployment", a.entity_id.in_(ids))
        ).all()
        for entity_id, done, after in events:
            if not isinstance(after, dict) or after.get("request_id") != self.request_id:
                continue
            found = deployment_records(s.execute(deployment_query().where(d.id == int(entity_id))).all())[0]
            if done != f"deployment.{action}" or (version is not None and found.version != version):
                raise ConflictError(
                    f"request id {self.request_id!r} already made another change in {environment!r}: "
                    f"{done} of version {found.version} of {model.name!r} (deployment {found.id}); "
                    "a new change needs a new request id; nothing was changed",
                    value=self.request_id,
                )
            return found
        return None

    def check(self, model: schema.ModelRow, environment: str, serving: int | None) -> None:
        """Refuse the change unless ``expect_version`` (when given) is the version ``serving`` now."""
        expected = self.expect_version
        if expected is None or expected == serving:
            return
        now = f"serves version {serving} of {model.name!r}" if serving is not None else f"serves no {model.name!r}"
        raise ConflictError(
            f"{environment!r} {now}, not version {expected} as expected (expect_version); "
            "someone changed it since it was read; nothing was changed",
            value=expected,
        )


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
    guard: Guard,
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
        {"reason": reason, "by": who, **guard.noted()}
        if restores_id is None
        else {"reason": reason, "by": who, "restores_id": restores_id, **guard.noted()}
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
    guard: Guard | None = None,
) -> DeploymentRecord:
    """Make ``version`` the active deployment of ``environment``; the one it replaces becomes superseded."""
    environment, endpoint, reason, who = _inputs(environment, reason, deployed_by, endpoint)
    guard = guard or Guard()
    if version is None:
        raise ValidationError("deploy needs a version number", value=version)
    model = resolve_model(s, model_ref, for_update=True)  # first statement: serialises deploys of this model
    target = resolve_version(s, model, version)
    done = guard.answered(s, model, environment, DEPLOY, target.number)
    if done is not None:
        return done
    previous = _locked_active(s, model.id, environment)
    ending = None
    if previous is not None:
        ending = (previous, _version_numbers(s, {previous.version_id})[previous.version_id], SUPERSEDED)
    guard.check(model, environment, ending[1] if ending is not None else None)
    entry = (target.id, target.number, endpoint, DEPLOY)
    return _change(s, store, model, ending, entry, environment=environment, reason=reason, who=who, guard=guard)


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
    guard: Guard | None = None,
) -> DeploymentRecord:
    """Return ``environment`` to the version active before the current one, as a new deployment."""
    environment, _, reason, who = _inputs(environment, reason, deployed_by)
    guard = guard or Guard()
    model = resolve_model(s, model_ref, for_update=True)
    done = guard.answered(s, model, environment, ROLLBACK)
    if done is not None:
        return done
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
    guard.check(model, environment, _version_numbers(s, {current.version_id})[current.version_id])
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
        s, store, model, ending, entry, environment=environment, reason=reason, who=who, guard=guard,
        restores_id=target.id,
    )  # fmt: skip


def undeploy(
    s: Session,
    store: Store,
    model_ref: Any,
    environment: str,
    *,
    version: int | None = None,
    reason: str | None = None,
    deployed_by: str | None = None,
    guard: Guard | None = None,
) -> DeploymentRecord:
    """Retire what serves ``environment`` (only if it is ``version``, when given); recorded as its own entry.

    ``version`` is the older spelling of ``expect_version`` (a version that does not exist is a
    NotFoundError); given both, they must agree.
    """
    environment, _, reason, who = _inputs(environment, reason, deployed_by)
    guard = guard or Guard()
    if version is not None and guard.expect_version not in (None, version):
        raise ValidationError(
            f"undeploy got version={version} and expect_version={guard.expect_version}; give one", value=version
        )
    model = resolve_model(s, model_ref, for_update=True)
    if version is not None:
        guard.expect_version = resolve_version(s, model, version).number
    done = guard.answered(s, model, environment, UNDEPLOY)
    if done is not None:
        return done
    current = _locked_active(s, model.id, environment)
    if current is None:
        raise _nothing_deployed(model, environment)
    number = _version_numbers(s, {current.version_id})[current.version_id]
    guard.check(model, environment, number)
    entry = (current.version_id, number, current.endpoint, UNDEPLOY)
    return _change(
        s, store, model, (current, number, RETIRED), entry, environment=environment, reason=reason, who=who,
        guard=guard,
    )  # fmt: skip


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
