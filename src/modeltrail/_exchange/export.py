"""Export: a model version as the standard record, to import into another ledger (see :mod:`.imports`).

One JSON document per version holds everything modeltrail knows about it (the JSON Schema ships
as ``modeltrail/schemas/model-version.schema.json``): the model, the version, the training behind
it with its params, full metric histories, stages, dataset, code and environment, its evaluations,
and its deployments with their production metrics. Why it looks like this:

* No database ids: they mean nothing in another ledger. Things are named by what identifies them
  there too: a model by name, a version by number, a training and an evaluation by their uuids, a
  deployment by (environment, version, time, action).
* Deterministic bytes: sorted keys, fixed orderings (metric points in logging order, stages by
  position, evaluations and deployments by time), floats as Python's ``repr`` and non-finite ones
  as ``{"$float": "nan"}`` (:func:`modeltrail._values.to_jsonable`), times in ISO 8601 UTC. The
  import keeps every time, so export -> import -> export gives the same bytes.
* An import is one transaction with one audit event: it lands whole or not at all. A version
  number that is free is taken as it is; one already holding the same training (same uuid) is
  left alone, so importing twice changes nothing; one holding different content is refused with
  a :class:`~modeltrail._errors.ValidationError` and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._records import ExportResult
from .._rows import resolve_model, resolve_version
from .._values import decode_float, float_to_json
from .format import FORMAT, FORMAT_VERSION

if TYPE_CHECKING:
    from .._store import Store


def dumps(document: Mapping[str, Any], *, indent: int | None = None) -> str:
    """One document as deterministic JSON text: sorted keys, no NaN literals, floats by repr."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(
        document, sort_keys=True, ensure_ascii=False, allow_nan=False, indent=indent, separators=separators
    )


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.timezone.utc).isoformat()


def _dataset(row: schema.DatasetRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "name": row.name,
        "digest": row.digest,
        "n_rows": row.n_rows,
        "n_features": row.n_features,
        "shape": row.shape,
        "features": row.features,
        "source": row.source,
    }


def version_numbers(s: Session, model_ref: Any, version: int | None = None) -> tuple[str, list[int]]:
    """The model's name and the version numbers an export covers (one, or all in order)."""
    model = resolve_model(s, model_ref)
    if version is not None:
        return model.name, [resolve_version(s, model, version).number]
    v = schema.VersionRow
    numbers = list(s.execute(select(v.number).where(v.model_id == model.id).order_by(v.number)).scalars())
    return model.name, numbers


def export_version(s: Session, model_ref: Any, number: int) -> dict[str, Any]:
    """The document of one version (see the module docstring)."""
    model = resolve_model(s, model_ref)
    version = resolve_version(s, model, number)
    parent = s.get(schema.VersionRow, version.parent_id) if version.parent_id is not None else None
    training = s.get(schema.TrainingRow, version.training_id)
    assert training is not None
    tag = schema.ModelTagRow
    tags = {k: v for k, v in s.execute(select(tag.key, tag.value).where(tag.model_id == model.id).order_by(tag.key))}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {
            "name": model.name,
            "framework": model.framework,
            "model_type": model.model_type,
            "description": model.description,
            "tags": tags,
        },
        "version": {
            "number": version.number,
            "parent": parent.number if parent is not None else None,
            "created_at": _time(version.created_at),
            "artifact_path": version.artifact_path,
            "param_diff": version.param_diff or {"added": {}, "removed": {}, "changed": {}},
        },
        "training": _export_training(s, training),
        "evaluations": _export_evaluations(s, version.id),
        "deployments": _export_deployments(s, version.id),
    }


def _export_training(s: Session, t: schema.TrainingRow) -> dict[str, Any]:
    p, st = schema.ParamRow, schema.StageRow
    params = {
        key: {"value": value, "display": display}
        for key, value, display in s.execute(
            select(p.key, p.value, p.display).where(p.training_id == t.id).order_by(p.key)
        )
    }
    stages = [
        {
            "position": row.position,
            "name": row.name,
            "status": row.status,
            "started_at": _time(row.started_at),
            "ended_at": _time(row.ended_at),
            "duration_s": row.duration_s,
            "error": row.error,
            "params": row.params or {},
        }
        for row in s.execute(select(st).where(st.training_id == t.id).order_by(st.position)).scalars()
    ]
    mp, mk = schema.MetricPointRow, schema.MetricKeyRow
    metrics: dict[str, list[list[Any]]] = {}
    for name, step, value, kind, ts in s.execute(
        select(mk.name, mp.step, mp.value, mp.kind, mp.ts)
        .join(mk, mk.id == mp.key_id)
        .where(mp.training_id == t.id)
        .order_by(mk.name, mp.seq)  # logging order: re-imported summaries come out the same
    ):
        metrics.setdefault(name, []).append([step, float_to_json(decode_float(value, kind)), ts])
    artifact = None
    if t.artifact_path is not None or t.artifact_sha256 is not None:
        artifact = {"path": t.artifact_path, "sha256": t.artifact_sha256, "size": t.artifact_size}
    return {
        "uuid": t.uuid,
        "status": t.status,
        "started_at": _time(t.started_at),
        "ended_at": _time(t.ended_at),
        "duration_s": t.duration_s,
        "error": t.error,
        "run_by": t.run_by,
        "host": t.host,
        "git_commit": t.git_commit,
        "artifact": artifact,
        "context": t.context or {},
        "dataset": _dataset(s.get(schema.DatasetRow, t.dataset_id) if t.dataset_id is not None else None),
        "params": params,
        "stages": stages,
        "metrics": metrics,
    }


def _export_evaluations(s: Session, version_id: int) -> list[dict[str, Any]]:
    e, em, mk = schema.EvaluationRow, schema.EvaluationMetricRow, schema.MetricKeyRow
    rows = list(s.execute(select(e).where(e.version_id == version_id).order_by(e.evaluated_at, e.uuid)).scalars())
    out = []
    for row in rows:
        metrics = {
            name: float_to_json(decode_float(value, kind))
            for name, value, kind in s.execute(
                select(mk.name, em.value, em.kind).join(mk, mk.id == em.key_id).where(em.evaluation_id == row.id)
            )
        }
        out.append(
            {
                "uuid": row.uuid,
                "dataset_name": row.dataset_name,
                "dataset": _dataset(s.get(schema.DatasetRow, row.dataset_id) if row.dataset_id is not None else None),
                "evaluated_at": _time(row.evaluated_at),
                "evaluated_by": row.evaluated_by,
                "description": row.description,
                "metrics": metrics,
            }
        )
    return out


def _deployment_ref(s: Session, deployment_id: int | None) -> dict[str, Any] | None:
    if deployment_id is None:
        return None
    d, v = schema.DeploymentRow, schema.VersionRow
    row = s.execute(
        select(d.environment, v.number, d.deployed_at, d.action)
        .join(v, v.id == d.version_id)
        .where(d.id == deployment_id)
    ).one()
    return {"environment": row[0], "version": row[1], "deployed_at": _time(row[2]), "action": row[3]}


def _export_deployments(s: Session, version_id: int) -> list[dict[str, Any]]:
    d, pm, mk = schema.DeploymentRow, schema.ProductionMetricRow, schema.MetricKeyRow
    rows = list(
        s.execute(select(d).where(d.version_id == version_id).order_by(d.deployed_at, d.environment, d.action))
        .scalars()
        .all()
    )
    out = []
    for row in rows:
        measured = [
            {"metric": name, "value": float_to_json(decode_float(value, kind)), "measured_at": _time(at)}
            for name, value, kind, at in s.execute(
                select(mk.name, pm.value, pm.kind, pm.measured_at)
                .join(mk, mk.id == pm.key_id)
                .where(pm.deployment_id == row.id)
                .order_by(pm.measured_at, mk.name, pm.id)
            )
        ]
        out.append(
            {
                "environment": row.environment,
                "endpoint": row.endpoint,
                "status": row.status,
                "action": row.action,
                "deployed_at": _time(row.deployed_at),
                "ended_at": _time(row.ended_at),
                "deployed_by": row.deployed_by,
                "reason": row.reason,
                "replaces": _deployment_ref(s, row.replaces_id),
                "rollback_of": _deployment_ref(s, row.rollback_of_id),
                "production_metrics": measured,
            }
        )
    return out


def export_documents(store: Store, model: Any, *, version: int | None = None) -> Iterator[dict[str, Any]]:
    """The documents of a model's versions (or of one), each read in its own short transaction."""
    with store.transaction(read_only=True) as s:
        name, numbers = version_numbers(s, model, version)
    for number in numbers:
        with store.transaction(read_only=True) as s:
            yield export_version(s, name, number)


def export_to(
    store: Store,
    model: str | int,
    *,
    version: int | None = None,
    path: str | os.PathLike[str] | None = None,
    directory: str | os.PathLike[str] | None = None,
    stream: TextIO | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write a model's versions (or one) as JSON Lines to ``path`` or ``stream`` (stdout by default),
    or into ``directory`` as one pretty-printed ``<model>-v<N>.json`` per version.

    Each version is read in its own short transaction; ``on_progress(done, total)`` follows them.
    """
    with store.transaction(read_only=True) as s:
        name, numbers = version_numbers(s, model, version)
    files: list[str] = []
    if directory is not None:
        os.makedirs(directory, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._") or "model"
    target = open(path, "w", encoding="utf-8") if path is not None else None  # noqa: SIM115 - closed below
    try:
        for done, number in enumerate(numbers, 1):
            with store.transaction(read_only=True) as s:
                document = export_version(s, name, number)
            if directory is not None:
                file = os.path.join(os.fspath(directory), f"{safe}-v{number}.json")
                with open(file, "w", encoding="utf-8") as fh:
                    fh.write(dumps(document, indent=2) + "\n")
                files.append(file)
            else:
                (target or stream or sys.stdout).write(dumps(document) + "\n")
            if on_progress is not None:
                on_progress(done, len(numbers))
    finally:
        if target is not None:
            target.close()
    return ExportResult(model=name, versions=numbers, files=files or ([os.fspath(path)] if path else []))
