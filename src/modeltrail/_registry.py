"""The model registry: deployments, rollbacks, comparisons, leaderboards and production metrics.

Writes here (deploy, rollback, undeploy, production metrics) are the only ones outside a
training. Each runs in one transaction through :meth:`Store.run` and starts by locking the
model row, so two deploys to one environment queue behind each other and leave exactly
one active deployment; the audit event is written in the same transaction.

A deployment row is never deleted and only its ``status`` and ``ended_at`` ever change:
an environment's timeline is the history of what served there.

Reads take an open session and return detached records, like :mod:`modeltrail._read.queries`.
Leaderboards and comparisons read ``metric_summaries`` only, never the metric history.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid as uuid_mod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from . import _schema as schema
from ._audit import record_event
from ._context import os_identity
from ._dataset import Dataset, dataset_row
from ._errors import NotFoundError, ValidationError
from ._operations.metrics import metric_key_ids
from ._read.queries import (
    dataset_record,
    model_records,
    params_of,
    resolve_model,
    resolve_version,
    summaries,
    summary_record,
    trainings_by_id,
    versions,
)
from ._records import (
    AuditRecord,
    Comparison,
    CurvePoint,
    DeploymentRecord,
    EvaluationDelta,
    EvaluationRecord,
    LeaderboardEntry,
    MetricDelta,
    ModelDetails,
    ProductionComparison,
    ProductionMetricRecord,
    RecordList,
    VersionDetails,
    VersionMetric,
)
from ._values import as_metric_value, check_metric_key, decode_float, encode_float, param_diff

if TYPE_CHECKING:
    from ._store import Store

ACTIVE, SUPERSEDED, ROLLED_BACK, RETIRED = "active", "superseded", "rolled_back", "retired"
DEPLOY, ROLLBACK, UNDEPLOY = "deploy", "rollback", "undeploy"
MODES = ("max", "min")
RANK_BY = ("best", "last")
ENVIRONMENT_MAX = 64
USER_MAX = 128

#: Metric names where lower is better, when the caller does not say (losses, errors, latencies).
_LOWER_IS_BETTER = re.compile(
    r"loss|err|mse|mae|rmse|mape|perplexity|ppl|wer|cer|latency|duration|time|regret|brier|nll|distance|fpr|fnr",
    re.IGNORECASE,
)


# ----------------------------------------------------------------- checks
def metric_mode(key: str) -> str:
    """The direction that is better for ``key`` when nobody said: "min" for losses and errors, else "max"."""
    return "min" if _LOWER_IS_BETTER.search(key) else "max"


def check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ValidationError(f"mode must be 'max' or 'min', got {mode!r}", value=mode)
    return str(mode)


def check_rank_by(by: Any) -> str:
    if by not in RANK_BY:
        raise ValidationError(f"by must be 'best' or 'last', got {by!r}", value=by)
    return str(by)


def check_environment(environment: Any) -> str:
    if not isinstance(environment, str) or not environment.strip():
        raise ValidationError(f"environment must be a non-empty string, got {environment!r}", value=environment)
    if len(environment) > ENVIRONMENT_MAX or environment != environment.strip():
        raise ValidationError(
            f"environment must be at most {ENVIRONMENT_MAX} characters without surrounding spaces, got {environment!r}",
            value=environment,
        )
    return environment


def _check_text(name: str, value: Any, limit: int | None = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, got {value!r}", value=value)
    if limit is not None and len(value) > limit:
        raise ValidationError(f"{name} is longer than {limit} characters: {value[:40]!r}...", value=value)
    return value


def check_time(at: Any, *, day_end: bool = True) -> dt.datetime:
    """A moment from a timezone-aware datetime, or from a date: the end of that day (UTC), or its start."""
    if isinstance(at, dt.datetime):
        if at.tzinfo is None:
            raise ValidationError(f"naive datetime {at!r}: give a timezone-aware one (UTC)", value=at)
        return at.astimezone(dt.timezone.utc)
    if isinstance(at, dt.date):
        return dt.datetime.combine(at, dt.time.max if day_end else dt.time.min, tzinfo=dt.timezone.utc)
    raise ValidationError(f"expected a datetime or a date, got {at!r}", value=at)


def _number(value: float | None) -> float:
    return math.nan if value is None else value


# ------------------------------------------------------------ deployments: read
def _deployment_query() -> Select:
    d, v, m = schema.DeploymentRow, schema.VersionRow, schema.ModelRow
    return select(d, v.number, m.name).join(v, v.id == d.version_id).join(m, m.id == d.model_id)


def _deployment_records(rows: Any) -> RecordList[DeploymentRecord]:
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
        _deployment_query()
        .where(d.model_id == model_id, d.environment == environment, d.status == ACTIVE)
        .order_by(d.id.desc())
        .limit(1)
    )


def current_deployment(s: Session, model_ref: Any, environment: str) -> DeploymentRecord | None:
    model = resolve_model(s, model_ref)
    rows = s.execute(active_deployment_query(model.id, check_environment(environment))).all()
    return _deployment_records(rows)[0] if rows else None


def deployment_at_query(model_id: int, environment: str, moment: dt.datetime) -> Select:
    """The last timeline entry of ``environment`` that started by ``moment``: one index range scan, newest first."""
    d = schema.DeploymentRow
    return (
        _deployment_query()
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
    return _deployment_records(rows)[0]


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
    query = _deployment_query()
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
    return _deployment_records(s.execute(query.order_by(schema.ModelRow.name, d.environment, d.id)).all())


def environments_of(s: Session, model_ref: Any, version: int) -> list[str]:
    """The environments where ``version`` serves now."""
    model = resolve_model(s, model_ref)
    row = resolve_version(s, model, version)
    d = schema.DeploymentRow
    query = select(d.environment).where(d.version_id == row.id, d.status == ACTIVE).order_by(d.environment)
    return list(s.execute(query).scalars())


def active_environments(s: Session, model_id: int) -> dict[int, list[str]]:
    """Version id -> environments it serves now, for one model."""
    d = schema.DeploymentRow
    out: dict[int, list[str]] = {}
    query = (
        select(d.version_id, d.environment).where(d.model_id == model_id, d.status == ACTIVE).order_by(d.environment)
    )
    for version_id, environment in s.execute(query):
        out.setdefault(version_id, []).append(environment)
    return out


# ----------------------------------------------------------- deployments: write
def _who(deployed_by: str | None) -> str:
    return _check_text("deployed_by", deployed_by, USER_MAX) or os_identity()[0][:USER_MAX]


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


def _append(
    s: Session,
    store: Store,
    model: schema.ModelRow,
    number: int,
    *,
    before: dict[str, Any] | None,
    noted: dict[str, Any],
    **values: Any,
) -> DeploymentRecord:
    """Add one timeline entry and its audit event (same transaction); ``noted`` goes into the event."""
    row = schema.DeploymentRow(model_id=model.id, **values)
    s.add(row)
    s.flush()
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
    environment = check_environment(environment)
    endpoint = _check_text("endpoint", endpoint)
    reason = _check_text("reason", reason)
    who = _who(deployed_by)
    if version is None:
        raise ValidationError("deploy needs a version number", value=version)
    model = resolve_model(s, model_ref, for_update=True)  # first statement: serialises deploys of this model
    target = resolve_version(s, model, version)
    now = schema.utcnow()
    previous = _locked_active(s, model.id, environment)
    before = None
    if previous is not None:
        before = _snapshot(previous, _version_numbers(s, {previous.version_id})[previous.version_id], model.name)
        _end(s, previous, SUPERSEDED, now)
    return _append(
        s,
        store,
        model,
        target.number,
        before=before,
        noted={"reason": reason, "by": who},
        version_id=target.id,
        environment=environment,
        endpoint=endpoint,
        status=ACTIVE,
        action=DEPLOY,
        deployed_at=now,
        deployed_by=who,
        reason=reason,
        replaces_id=previous.id if previous is not None else None,
    )


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
    environment = check_environment(environment)
    reason = _check_text("reason", reason)
    who = _who(deployed_by)
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
        raise NotFoundError(f"nothing of model {model.name!r} is deployed in {environment!r}", value=environment)
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
    now = schema.utcnow()
    before = _snapshot(current, numbers[current.version_id], model.name)
    _end(s, current, ROLLED_BACK, now)
    return _append(
        s,
        store,
        model,
        numbers[target.version_id],
        before=before,
        noted={"reason": reason, "by": who, "restores_id": target.id},
        version_id=target.version_id,
        environment=environment,
        endpoint=target.endpoint,
        status=ACTIVE,
        action=ROLLBACK,
        deployed_at=now,
        deployed_by=who,
        reason=reason,
        replaces_id=current.id,
        rollback_of_id=current.id,
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
    environment = check_environment(environment)
    reason = _check_text("reason", reason)
    who = _who(deployed_by)
    model = resolve_model(s, model_ref, for_update=True)
    expected = resolve_version(s, model, version) if version is not None else None
    current = _locked_active(s, model.id, environment)
    if current is None:
        raise NotFoundError(f"nothing of model {model.name!r} is deployed in {environment!r}", value=environment)
    number = _version_numbers(s, {current.version_id})[current.version_id]
    if expected is not None and expected.id != current.version_id:
        raise ValidationError(
            f"{environment!r} serves version {number} of {model.name!r}, not version {version}", value=version
        )
    now = schema.utcnow()
    before = _snapshot(current, number, model.name)
    _end(s, current, RETIRED, now)
    return _append(
        s,
        store,
        model,
        number,
        before=before,
        noted={"reason": reason, "by": who},
        version_id=current.version_id,
        environment=environment,
        endpoint=current.endpoint,
        status=RETIRED,
        action=UNDEPLOY,
        deployed_at=now,
        ended_at=now,
        deployed_by=who,
        reason=reason,
        replaces_id=current.id,
    )


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
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValidationError(f"metrics must be a non-empty mapping of name to number, got {metrics!r}", value=metrics)
    values = {check_metric_key(k): as_metric_value(v, k) for k, v in metrics.items()}
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
            raise NotFoundError(f"nothing of model {model.name!r} is deployed in {environment!r}", value=environment)
    else:
        if isinstance(deployment_id, bool) or not isinstance(deployment_id, int):
            raise ValidationError(f"deployment_id must be an integer, got {deployment_id!r}", value=deployment_id)
        rows = s.execute(
            _deployment_query().where(d.id == deployment_id, d.model_id == model.id, d.environment == environment)
        ).all()
        if not rows:
            raise NotFoundError(
                f"no deployment {deployment_id} of {model.name!r} in {environment!r}", value=deployment_id
            )
    deployment = _deployment_records(rows)[0]
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


def production_metrics(
    s: Session,
    model_ref: Any,
    *,
    environment: str | None = None,
    metric: str | None = None,
    version: int | None = None,
) -> RecordList[ProductionMetricRecord]:
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


def compare_production(
    s: Session,
    model_ref: Any,
    environment: str,
    metric: str,
    *,
    training_metric: str | None = None,
    mode: str | None = None,
) -> RecordList[ProductionComparison]:
    """Each production measurement of ``metric`` beside the serving version's training value of it."""
    model = resolve_model(s, model_ref)
    train_key = training_metric or metric
    mode = check_mode(mode) if mode is not None else metric_mode(train_key)
    points = production_metrics(s, model.id, environment=environment, metric=metric)
    training_of = {r.number: r.training_id for r in versions(s, model.id)}
    found = summaries(s, sorted({training_of[p.version] for p in points}))
    out: RecordList[ProductionComparison] = RecordList()
    for p in points:
        summary = found[training_of[p.version]].get(train_key)
        last = summary.last if summary is not None else None
        best = (summary.max if mode == "max" else summary.min) if summary is not None else None
        out.append(
            ProductionComparison(
                deployment_id=p.deployment_id,
                environment=p.environment,
                version=p.version,
                metric=metric,
                measured_at=p.measured_at,
                value=p.value,
                training_metric=train_key,
                training_last=last,
                training_best=best,
                delta_last=p.value - last if last is not None else None,
            )
        )
    return out


# ------------------------------------------------------------------ details
def model_details(s: Session, model_ref: Any) -> ModelDetails:
    """A model with each version, the training behind it (dataset, artifact, params, metrics) and where it serves."""
    model = resolve_model(s, model_ref)
    record = model_records(s, [model])[0]
    rows = versions(s, model.id)
    trainings = trainings_by_id(s, [r.training_id for r in rows])
    serving = active_environments(s, model.id)
    return ModelDetails(
        model=record,
        versions=RecordList(
            VersionDetails(version=r, training=trainings[r.training_id], environments=serving.get(r.id, []))
            for r in rows
        ),
        deployments=deployments(s, model.id, status=ACTIVE),
    )


# ------------------------------------------------------------ comparisons
def compare(s: Session, model_ref: Any, a: int, b: int, *, modes: Mapping[str, str] | None = None) -> Comparison:
    """What changed from version ``a`` to ``b``: params, shared metrics (final and best), dataset, duration, code.

    Five short indexed queries whatever the history's size: the two versions with their trainings,
    their params, their metric summaries, their datasets.
    """
    model = resolve_model(s, model_ref)
    for number in (a, b):
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValidationError(f"a version number is an integer, got {number!r}", value=number)
    v, t = schema.VersionRow, schema.TrainingRow
    rows = {
        row.number: row
        for row in s.execute(
            select(v.number, v.training_id, t.duration_s, t.git_commit, t.dataset_id)
            .join(t, t.id == v.training_id)
            .where(v.model_id == model.id, v.number.in_([n for n in (a, b) if -(2**31) <= n < 2**31]))
        )
    }
    for number in (a, b):
        if number not in rows:
            raise NotFoundError(f"model {model.name!r} has no version {number}", value=number)
    ra, rb = rows[a], rows[b]
    ids = [ra.training_id, rb.training_id]
    params = params_of(s, ids)
    metrics = summaries(s, ids)
    dataset_ids = {r.dataset_id for r in (ra, rb) if r.dataset_id is not None}
    datasets = {
        d.id: dataset_record(d)
        for d in (
            s.execute(select(schema.DatasetRow).where(schema.DatasetRow.id.in_(dataset_ids))).scalars()
            if dataset_ids
            else []
        )
    }
    da, db = datasets.get(ra.dataset_id), datasets.get(rb.dataset_id)
    metrics_a, metrics_b = metrics[ra.training_id], metrics[rb.training_id]
    modes = dict(modes or {})
    for mode in modes.values():
        check_mode(mode)
    deltas: RecordList[MetricDelta] = RecordList()
    for key in sorted(metrics_a.keys() & metrics_b.keys()):
        ma, mb = metrics_a[key], metrics_b[key]
        mode = modes.get(key) or metric_mode(key)
        best_a = ma.max if mode == "max" else ma.min
        best_b = mb.max if mode == "max" else mb.min
        deltas.append(
            MetricDelta(
                key=key,
                mode=mode,
                last_a=ma.last,
                last_b=mb.last,
                last_delta=mb.last - ma.last,
                best_a=best_a,
                best_b=best_b,
                best_delta=best_b - best_a if best_a is not None and best_b is not None else None,
            )
        )
    duration_a, duration_b = ra.duration_s, rb.duration_s
    return Comparison(
        model=model.name,
        a=a,
        b=b,
        training_a=ra.training_id,
        training_b=rb.training_id,
        params=param_diff(params[ra.training_id], params[rb.training_id]),
        metrics=deltas,
        metrics_only_a=sorted(metrics_a.keys() - metrics_b.keys()),
        metrics_only_b=sorted(metrics_b.keys() - metrics_a.keys()),
        dataset_a=da,
        dataset_b=db,
        dataset_changed=ra.dataset_id != rb.dataset_id,
        duration_a=duration_a,
        duration_b=duration_b,
        duration_delta=duration_b - duration_a if duration_a is not None and duration_b is not None else None,
        commit_a=ra.git_commit,
        commit_b=rb.git_commit,
        code_changed=ra.git_commit != rb.git_commit,
        evaluations=_evaluation_deltas(s, model, a, b, modes),
    )


# ------------------------------------------------------------ leaderboards
def metric_key_id(s: Session, metric: str) -> int | None:
    check_metric_key(metric)
    return s.execute(select(schema.MetricKeyRow.id).where(schema.MetricKeyRow.name == metric)).scalar_one_or_none()


def leaderboard_query(model_id: int, metric: str, *, mode: str, by: str) -> Select:
    """One model's versions ranked by one metric's summary, NaN (NULL) last on every backend.

    Columns: number, training_id, version id, then the ranked (value, kind, step) and the other
    figure's (value, kind): the last value when ranking by best, the best when ranking by last.
    Only what a leaderboard shows is fetched: with 1,000 versions the driver's row decoding is
    most of the cost. Versions are found by (model_id, number), summaries by (training_id, key_id).
    """
    v, ms, mk = schema.VersionRow, schema.MetricSummaryRow, schema.MetricKeyRow
    best = (ms.max_value, ms.max_kind, ms.max_step) if mode == "max" else (ms.min_value, ms.min_kind, ms.min_step)
    last = (ms.last_value, ms.last_kind, ms.last_step)
    ranked, other = (last, best) if by == "last" else (best, last)
    column = ranked[0]
    return (
        select(v.number, v.training_id, v.id, *ranked, *other[:2])
        .join(ms, ms.training_id == v.training_id)
        .join(mk, and_(mk.id == ms.key_id, mk.name == metric))
        .where(v.model_id == model_id)
        .order_by(column.is_(None), column.desc() if mode == "max" else column.asc(), v.number)
    )


def leaderboard(
    s: Session,
    model_ref: Any,
    metric: str,
    *,
    mode: str = "max",
    by: str = "best",
    limit: int | None = None,
    dataset: str | None = None,
) -> RecordList[LeaderboardEntry]:
    """Versions ranked by ``metric``: by each training's best value over its whole history, or its last one.

    With ``dataset``, by ``metric`` of each version's latest evaluation on that dataset instead
    (``by`` does not apply: an evaluation has one value). Equal values share a rank. Versions
    that never logged (or were never evaluated with) ``metric`` are left out.
    """
    mode, by = check_mode(mode), check_rank_by(by)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError(f"limit must be a positive integer, got {limit!r}", value=limit)
    check_metric_key(metric)
    model = resolve_model(s, model_ref)
    if dataset is not None:
        return _evaluation_leaderboard(s, model, metric, check_dataset_name(dataset), mode=mode, limit=limit)
    query = leaderboard_query(model.id, metric, mode=mode, by=by)
    if limit is not None:
        query = query.limit(limit)
    serving = active_environments(s, model.id)
    out: RecordList[LeaderboardEntry] = RecordList()
    rank, previous = 0, None
    name = model.name
    for i, (number, training_id, version_id, value, kind, step, other, other_kind) in enumerate(
        s.connection().execute(query).all()
    ):
        ranked = decode_float(value, kind)
        if by == "best":
            best = None if step is None else ranked
            last = decode_float(other, other_kind)
        else:
            best = None if other is None else decode_float(other, other_kind)
            last = ranked
        if previous is None or ranked != previous:
            rank = i + 1
        previous = ranked
        out.append(
            LeaderboardEntry(
                rank=rank,
                model=name,
                version=number,
                training_id=training_id,
                metric=metric,
                value=ranked,
                step=step,
                last=last,
                best=best,
                environments=serving.get(version_id, []),
            )
        )
    return out


_SUMMARY_COLUMNS = (
    "count", "last_step", "last_value", "last_kind", "min_step", "min_value", "min_kind", "max_step", "max_value",
    "max_kind",
)  # fmt: skip


def metric_by_version(s: Session, model_ref: Any, metric: str, *, mode: str | None = None) -> RecordList[VersionMetric]:
    """One metric's final and best value in every version that logged it, by version number."""
    mode = check_mode(mode) if mode is not None else metric_mode(metric)
    model = resolve_model(s, model_ref)
    key_id = metric_key_id(s, metric)
    if key_id is None:
        return RecordList()
    serving = active_environments(s, model.id)
    v, ms = schema.VersionRow, schema.MetricSummaryRow
    query = (
        select(v.number, v.training_id, v.id, *(getattr(ms, c) for c in _SUMMARY_COLUMNS))
        .join(ms, and_(ms.training_id == v.training_id, ms.key_id == key_id))
        .where(v.model_id == model.id)
        .order_by(v.number)
    )
    out: RecordList[VersionMetric] = RecordList()
    for row in s.execute(query):
        summary = summary_record(metric, row)
        best, best_step = (summary.max, summary.max_step) if mode == "max" else (summary.min, summary.min_step)
        out.append(
            VersionMetric(
                model=model.name,
                version=row.number,
                training_id=row.training_id,
                metric=metric,
                mode=mode,
                count=summary.count,
                last=summary.last,
                last_step=summary.last_step,
                best=best,
                best_step=best_step,
                environments=serving.get(row.id, []),
            )
        )
    return out


# ------------------------------------------------------------ evaluations
DESCRIPTION_MAX = 10_000


def check_dataset_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > schema.NAME_MAX or name != name.strip():
        raise ValidationError(
            f"a dataset name is 1 to {schema.NAME_MAX} characters without surrounding spaces, got {name!r}", value=name
        )
    return name


def evaluate(
    s: Session,
    store: Store,
    model_ref: Any,
    version: int | None,
    *,
    dataset: Dataset | str,
    metrics: Mapping[str, Any],
    evaluated_by: str | None = None,
    description: str | None = None,
    evaluated_at: dt.datetime | None = None,
    uuid: str | None = None,
) -> EvaluationRecord:
    """Record metrics of an existing version measured on ``dataset``; no training, no new version.

    The evaluation and its audit event are one transaction. ``dataset`` is a fingerprinted
    :class:`~modeltrail.Dataset` (kept in ``datasets``, so lineage by digest finds it) or just a name.
    """
    if isinstance(dataset, Dataset):
        name, row = dataset.name, dataset_row(dataset)
    else:
        name, row = check_dataset_name(dataset), None
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValidationError(f"metrics must be a non-empty mapping of name to number, got {metrics!r}", value=metrics)
    values = {check_metric_key(k): as_metric_value(v, k) for k, v in metrics.items()}
    who = _check_text("evaluated_by", evaluated_by, USER_MAX) or os_identity()[0][:USER_MAX]
    description = _check_text("description", description, DESCRIPTION_MAX)
    moment = schema.utcnow() if evaluated_at is None else check_time(evaluated_at)
    model = resolve_model(s, model_ref)
    target = resolve_version(s, model, version)
    from ._operations.trainings import get_or_create_dataset

    dataset_id = get_or_create_dataset(s, row) if row is not None else None
    evaluation = schema.EvaluationRow(
        uuid=uuid or str(uuid_mod.uuid4()),
        version_id=target.id,
        dataset_name=name,
        dataset_id=dataset_id,
        evaluated_at=moment,
        evaluated_by=who,
        description=description,
    )
    s.add(evaluation)
    s.flush()
    add_evaluation_metrics(s, evaluation.id, values)
    record_event(
        s, store, action="evaluation.create", entity="evaluation", entity_id=evaluation.id,
        after={"model": model.name, "version": target.number, "dataset": name,
               "digest": row["digest"] if row else None, "metrics": values, "by": who},
    )  # fmt: skip
    return EvaluationRecord(
        id=evaluation.id,
        uuid=evaluation.uuid,
        model=model.name,
        version=target.number,
        dataset=name,
        dataset_digest=row["digest"] if row else None,
        evaluated_at=moment,
        evaluated_by=who,
        description=description,
        metrics=values,
    )


def add_evaluation_metrics(s: Session, evaluation_id: int, values: Mapping[str, float]) -> None:
    """Insert one evaluation's metrics (keys made on first use)."""
    key_ids = metric_key_ids(s, values)
    rows = []
    for key, value in sorted(values.items()):
        stored, kind = encode_float(value)
        rows.append({"evaluation_id": evaluation_id, "key_id": key_ids[key], "value": stored, "kind": kind})
    s.execute(insert(schema.EvaluationMetricRow), rows)


def evaluation_records(s: Session, query: Select) -> RecordList[EvaluationRecord]:
    """Records from a query over (Evaluation, version number, model name, dataset digest)."""
    rows = s.execute(query).all()
    metrics: dict[int, dict[str, float]] = {row[0].id: {} for row in rows}
    if metrics:
        em, mk = schema.EvaluationMetricRow, schema.MetricKeyRow
        for evaluation_id, name, value, kind in s.execute(
            select(em.evaluation_id, mk.name, em.value, em.kind)
            .join(mk, mk.id == em.key_id)
            .where(em.evaluation_id.in_(list(metrics)))
            .order_by(em.evaluation_id, mk.name)
        ):
            metrics[evaluation_id][name] = decode_float(value, kind)
    return RecordList(
        EvaluationRecord(
            id=e.id,
            uuid=e.uuid,
            model=model_name,
            version=number,
            dataset=e.dataset_name,
            dataset_digest=digest,
            evaluated_at=e.evaluated_at,
            evaluated_by=e.evaluated_by,
            description=e.description,
            metrics=metrics[e.id],
        )
        for e, number, model_name, digest in rows
    )


def evaluation_query() -> Select:
    e, v, m, d = schema.EvaluationRow, schema.VersionRow, schema.ModelRow, schema.DatasetRow
    return (
        select(e, v.number, m.name, d.digest)
        .join(v, v.id == e.version_id)
        .join(m, m.id == v.model_id)
        .outerjoin(d, d.id == e.dataset_id)
    )


def evaluations(
    s: Session, model_ref: Any, *, version: int | None = None, dataset: str | None = None
) -> RecordList[EvaluationRecord]:
    """A model's evaluations (of one version, on one dataset), by version then time."""
    model = resolve_model(s, model_ref)
    e, v = schema.EvaluationRow, schema.VersionRow
    query = evaluation_query().where(v.model_id == model.id)
    if version is not None:
        query = query.where(e.version_id == resolve_version(s, model, version).id)
    if dataset is not None:
        query = query.where(e.dataset_name == check_dataset_name(dataset))
    return evaluation_records(s, query.order_by(v.number, e.evaluated_at, e.id))


def _latest_evaluations(
    s: Session, model: schema.ModelRow, numbers: Sequence[int] | None = None
) -> dict[tuple[int, str], EvaluationRecord]:
    """(version number, dataset) -> the latest evaluation of that version on that dataset."""
    latest: dict[tuple[int, str], EvaluationRecord] = {}
    e, v = schema.EvaluationRow, schema.VersionRow
    query = evaluation_query().where(v.model_id == model.id)
    if numbers is not None:
        query = query.where(v.number.in_(list(numbers)))
    for record in evaluation_records(s, query.order_by(e.evaluated_at, e.id)):
        latest[(record.version, record.dataset)] = record  # later rows replace earlier ones
    return latest


def _evaluation_leaderboard(
    s: Session, model: schema.ModelRow, metric: str, dataset: str, *, mode: str, limit: int | None
) -> RecordList[LeaderboardEntry]:
    latest = _latest_evaluations(s, model)
    scored = [
        (record, record.metrics[metric])
        for (_, name), record in latest.items()
        if name == dataset and metric in record.metrics
    ]
    sign = -1.0 if mode == "max" else 1.0
    scored.sort(key=lambda pair: (math.isnan(pair[1]), sign * pair[1] if not math.isnan(pair[1]) else 0.0,
                                  pair[0].version))  # fmt: skip
    if limit is not None:
        scored = scored[:limit]
    training_of = {r.number: (r.training_id, r.id) for r in versions(s, model.id)}
    serving = active_environments(s, model.id)
    out: RecordList[LeaderboardEntry] = RecordList()
    rank, previous = 0, None
    for i, (record, value) in enumerate(scored):
        if previous is None or not (value == previous or (math.isnan(value) and math.isnan(previous))):
            rank = i + 1
        previous = value
        training_id, version_id = training_of[record.version]
        out.append(
            LeaderboardEntry(
                rank=rank,
                model=model.name,
                version=record.version,
                training_id=training_id,
                metric=metric,
                value=value,
                step=None,
                last=value,
                best=value,
                environments=serving.get(version_id, []),
                dataset=dataset,
            )
        )
    return out


def _evaluation_deltas(
    s: Session, model: schema.ModelRow, a: int, b: int, modes: Mapping[str, str]
) -> RecordList[EvaluationDelta]:
    latest = _latest_evaluations(s, model, [a, b])
    out: RecordList[EvaluationDelta] = RecordList()
    for dataset in sorted(
        {name for number, name in latest if number == a} & {name for number, name in latest if number == b}
    ):
        ea, eb = latest[(a, dataset)], latest[(b, dataset)]
        for key in sorted(ea.metrics.keys() & eb.metrics.keys()):
            va, vb = ea.metrics[key], eb.metrics[key]
            out.append(
                EvaluationDelta(
                    dataset=dataset, key=key, mode=modes.get(key) or metric_mode(key), value_a=va, value_b=vb,
                    delta=vb - va,
                )
            )  # fmt: skip
    return out


# ------------------------------------------------------------ histories
def metric_curves(
    s: Session, model_ref: Any, metric: str, *, versions: Sequence[int] | None = None
) -> RecordList[CurvePoint]:
    """Every point of ``metric`` in every version (or the given ones), by version then step."""
    model = resolve_model(s, model_ref)
    key_id = metric_key_id(s, metric)
    if key_id is None:
        return RecordList()
    v, mp = schema.VersionRow, schema.MetricPointRow
    query = (
        select(v.number, v.training_id, mp.step, mp.value, mp.kind, mp.ts)
        .join(mp, and_(mp.training_id == v.training_id, mp.key_id == key_id))
        .where(v.model_id == model.id)
    )
    if versions is not None:
        numbers = [resolve_version(s, model, n).number for n in versions]
        query = query.where(v.number.in_(numbers))
    rows = s.execute(query.order_by(v.number, mp.step, mp.id))
    return RecordList(
        CurvePoint(
            model=model.name,
            version=number,
            training_id=tid,
            metric=metric,
            step=step,
            value=decode_float(value, kind),
            timestamp=dt.datetime.fromtimestamp(ts, dt.timezone.utc),
        )
        for number, tid, step, value, kind, ts in rows
    )


def version_history(
    s: Session, model_ref: Any, version: int | None = None, *, metrics: Sequence[str] | None = None
) -> RecordList[CurvePoint]:
    """Every metric point of one version (the latest by default), by metric then step."""
    model = resolve_model(s, model_ref)
    row = resolve_version(s, model, version)
    mp, mk = schema.MetricPointRow, schema.MetricKeyRow
    query = (
        select(mk.name, mp.step, mp.value, mp.kind, mp.ts)
        .join(mk, mk.id == mp.key_id)
        .where(mp.training_id == row.training_id)
    )
    if metrics is not None:
        query = query.where(mk.name.in_([check_metric_key(m) for m in metrics]))
    rows = s.execute(query.order_by(mk.name, mp.step, mp.id))
    return RecordList(
        CurvePoint(
            model=model.name,
            version=row.number,
            training_id=row.training_id,
            metric=name,
            step=step,
            value=decode_float(value, kind),
            timestamp=dt.datetime.fromtimestamp(ts, dt.timezone.utc),
        )
        for name, step, value, kind, ts in rows
    )


# ------------------------------------------------------------------ audit
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
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError(f"limit must be a positive integer, got {limit!r}", value=limit)
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
