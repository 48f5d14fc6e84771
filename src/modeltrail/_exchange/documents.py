"""A standard record of a model version: export it from one ledger, import it into another.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._audit import record_event
from .._errors import ValidationError
from .._operations.evaluations import add_evaluation_metrics
from .._operations.trainings import get_or_create_dataset, get_or_create_model, metric_key_ids
from .._read.queries import resolve_model, resolve_version
from .._rows import ACTIVE
from .._store import upsert
from .._values import decode_float, encode_float, from_jsonable, to_jsonable

if TYPE_CHECKING:
    from .._store import Store

FORMAT = "modeltrail.model-version"
FORMAT_VERSION = 1
SCHEMA_FILE = "model-version.schema.json"
_POINT_CHUNK = 10_000


# ------------------------------------------------------------------ the schema
@lru_cache(maxsize=1)
def json_schema() -> dict[str, Any]:
    """The JSON Schema of an exported document, as shipped in the package."""
    text = resources.files("modeltrail").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8")
    return dict(json.loads(text))


def schema_errors(document: Any, spec: Mapping[str, Any] | None = None) -> list[str]:
    """Where ``document`` breaks the JSON Schema, as ``path: problem`` lines (empty when it conforms).

    A small validator for the keywords the shipped schema uses (type, const, enum, required,
    properties, additionalProperties, items, prefixItems, min/maxItems, min/maxLength, minimum,
    anyOf, local $ref), so modeltrail needs no JSON Schema library to check what it imports.
    """
    root = dict(spec if spec is not None else json_schema())
    errors: list[str] = []
    _check(document, root, root, "$", errors)
    return errors


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _check(value: Any, rule: Mapping[str, Any], root: Mapping[str, Any], path: str, errors: list[str]) -> None:
    if "$ref" in rule:
        target: Any = root
        for part in str(rule["$ref"]).removeprefix("#/").split("/"):
            target = target[part]
        _check(value, target, root, path, errors)
    if "anyOf" in rule:
        if not any(not _sub_errors(value, option, root, path) for option in rule["anyOf"]):
            errors.append(f"{path}: matches none of the allowed forms")
        return
    if "const" in rule and value != rule["const"]:
        errors.append(f"{path}: must be {rule['const']!r}")
    if "enum" in rule and value not in rule["enum"]:
        errors.append(f"{path}: must be one of {rule['enum']}")
    if "type" in rule:
        kinds = rule["type"] if isinstance(rule["type"], list) else [rule["type"]]
        if not any(_TYPES[k](value) for k in kinds):
            errors.append(f"{path}: must be {' or '.join(kinds)}, got {type(value).__name__}")
            return
    if isinstance(value, str):
        if len(value) < rule.get("minLength", 0):
            errors.append(f"{path}: shorter than {rule['minLength']} characters")
        if "maxLength" in rule and len(value) > rule["maxLength"]:
            errors.append(f"{path}: longer than {rule['maxLength']} characters")
    if _TYPES["number"](value) and "minimum" in rule and value < rule["minimum"]:
        errors.append(f"{path}: less than {rule['minimum']}")
    if isinstance(value, dict):
        for key in rule.get("required", ()):
            if key not in value:
                errors.append(f"{path}: {key!r} is missing")
        properties = rule.get("properties", {})
        extra = rule.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                _check(item, properties[key], root, f"{path}.{key}", errors)
            elif extra is False:
                errors.append(f"{path}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                _check(item, extra, root, f"{path}.{key}", errors)
    if isinstance(value, list):
        if len(value) < rule.get("minItems", 0):
            errors.append(f"{path}: fewer than {rule['minItems']} items")
        if "maxItems" in rule and len(value) > rule["maxItems"]:
            errors.append(f"{path}: more than {rule['maxItems']} items")
        prefix = rule.get("prefixItems", [])
        for i, item in enumerate(value):
            if i < len(prefix):
                _check(item, prefix[i], root, f"{path}[{i}]", errors)
            elif "items" in rule:
                _check(item, rule["items"], root, f"{path}[{i}]", errors)


def _sub_errors(value: Any, rule: Mapping[str, Any], root: Mapping[str, Any], path: str) -> list[str]:
    found: list[str] = []
    _check(value, rule, root, path, found)
    return found


# ------------------------------------------------------------------ writing JSON
def dumps(document: Mapping[str, Any], *, indent: int | None = None) -> str:
    """One document as deterministic JSON text: sorted keys, no NaN literals, floats by repr."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(
        document, sort_keys=True, ensure_ascii=False, allow_nan=False, indent=indent, separators=separators
    )


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.timezone.utc).isoformat()


def _parse_time(text: str | None, where: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as e:
        raise ValidationError(f"{where}: not an ISO 8601 time: {text!r}", value=text) from e
    if moment.tzinfo is None:
        raise ValidationError(f"{where}: a time without a zone: {text!r}", value=text)
    return moment.astimezone(dt.timezone.utc)


def _float(value: float) -> Any:
    return to_jsonable(float(value))


def _unfloat(value: Any) -> float:
    return float(from_jsonable(value))


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


# ------------------------------------------------------------------ export
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
        .order_by(mk.name, mp.id)  # logging order: re-imported summaries come out the same
    ):
        metrics.setdefault(name, []).append([step, _float(decode_float(value, kind)), ts])
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
            name: _float(decode_float(value, kind))
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
            {"metric": name, "value": _float(decode_float(value, kind)), "measured_at": _time(at)}
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


# ------------------------------------------------------------------ reading files
def read_documents(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Documents from a file (one JSON document, a JSON array of them, or JSON Lines) or a directory of such files."""
    p = Path(path)
    if p.is_dir():
        return [doc for f in sorted(p.rglob("*.json*")) if f.is_file() for doc in read_documents(f)]
    if not p.exists():
        raise ValidationError(f"no such file: {os.fspath(path)!r}", value=os.fspath(path))
    text = p.read_text(encoding="utf-8")
    return parse_documents(text, source=os.fspath(path))


def parse_documents(text: str, *, source: str = "<input>") -> list[dict[str, Any]]:
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = json.loads(stripped)
    except json.JSONDecodeError:
        whole = None
    else:
        if isinstance(whole, list):
            return whole
        return [whole]
    documents = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                documents.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValidationError(f"{source}, line {number}: not JSON: {e}", value=source) from e
    return documents


# ------------------------------------------------------------------ import
class ImportResult(dict[str, Any]):
    """What an import did: ``imported`` and ``skipped`` as ``[model, number]`` pairs, plus counts."""


def import_documents(
    store: Store,
    documents: Iterable[Mapping[str, Any]],
    *,
    deployments: bool = True,
    source: str | None = None,
    on_document: Callable[[], None] | None = None,
) -> ImportResult:
    """Load documents into this ledger in one transaction (see the module docstring).

    ``deployments=False`` leaves the deployment history out (for a ledger whose environments
    are not the source's). ``on_document`` is called after each document (a progress bar).
    """
    docs = [dict(d) for d in documents]
    for i, doc in enumerate(docs):
        errors = schema_errors(doc)
        if errors:
            shown = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
            raise ValidationError(f"document {i + 1} does not follow the modeltrail schema: {shown}", value=i + 1)
    docs.sort(key=lambda d: (d["model"]["name"], d["version"]["number"]))
    return store.run(lambda s: _import(s, store, docs, deployments=deployments, source=source, on_document=on_document))


def _import(
    s: Session,
    store: Store,
    docs: list[dict[str, Any]],
    *,
    deployments: bool,
    source: str | None,
    on_document: Callable[[], None] | None,
) -> ImportResult:
    imported: list[list[Any]] = []
    skipped: list[list[Any]] = []
    placed: list[tuple[int, int, dict[str, Any]]] = []  # (model id, version id, document)
    for doc in docs:
        name, number = doc["model"]["name"], doc["version"]["number"]
        model_id, version_id, new = _import_version(s, store, doc)
        (imported if new else skipped).append([name, number])
        placed.append((model_id, version_id, doc))
        if on_document is not None:
            on_document()
    for _, version_id, doc in placed:
        _import_evaluations(s, version_id, doc)
    if deployments:
        _import_deployments(s, placed)
    result = ImportResult(imported=imported, skipped=skipped, documents=len(docs))
    record_event(
        s, store, action="ledger.import", entity="ledger", entity_id=(source or "import")[:64],
        after={"source": source, "imported": imported[:1000], "skipped": skipped[:1000],
               "imported_count": len(imported), "skipped_count": len(skipped)},
    )  # fmt: skip
    return result


def _import_version(s: Session, store: Store, doc: Mapping[str, Any]) -> tuple[int, int, bool]:
    """Place one document's version; (model id, version id, whether it was new)."""
    m, v, t = doc["model"], doc["version"], doc["training"]
    number = v["number"]
    model = get_or_create_model(
        s, store, m["name"], framework=m["framework"], model_type=m["model_type"], description=m["description"]
    )
    model = resolve_model(s, model.id, for_update=True)  # serialise with trainings numbering versions
    if m["tags"]:
        upsert(
            s,
            schema.ModelTagRow.__table__,
            [{"model_id": model.id, "key": k, "value": value} for k, value in sorted(m["tags"].items())],
            keys=["model_id", "key"],
        )
    sv, st = schema.VersionRow, schema.TrainingRow
    existing = s.execute(
        select(sv.id, st.uuid).join(st, st.id == sv.training_id).where(sv.model_id == model.id, sv.number == number)
    ).one_or_none()
    if existing is not None:
        if existing[1] == t["uuid"]:
            return model.id, existing[0], False
        raise ValidationError(
            f"version {number} of model {m['name']!r} already exists in this ledger with other content "
            f"(training {existing[1]}, the document's is {t['uuid']}); nothing was imported",
            value=number,
        )
    elsewhere = s.execute(select(st.id, st.model_id).where(st.uuid == t["uuid"])).one_or_none()
    if elsewhere is not None:
        raise ValidationError(
            f"training {t['uuid']} of version {number} of {m['name']!r} is already in this ledger as another "
            "training; nothing was imported",
            value=t["uuid"],
        )
    training_id = _insert_training(s, model.id, t)
    parent_id = None
    if v["parent"] is not None:
        parent_id = s.execute(
            select(sv.id).where(sv.model_id == model.id, sv.number == v["parent"])
        ).scalar_one_or_none()
    row = schema.VersionRow(
        model_id=model.id,
        number=number,
        training_id=training_id,
        parent_id=parent_id,
        artifact_path=v["artifact_path"],
        param_diff=v["param_diff"],
        created_at=_parse_time(v["created_at"], "version.created_at"),
    )
    s.add(row)
    s.flush()
    return model.id, row.id, True


def _insert_training(s: Session, model_id: int, t: Mapping[str, Any]) -> int:
    dataset_id = get_or_create_dataset(s, t["dataset"]) if t["dataset"] is not None else None
    artifact = t["artifact"] or {}
    training = schema.TrainingRow(
        uuid=t["uuid"],
        model_id=model_id,
        status=t["status"],
        started_at=_parse_time(t["started_at"], "training.started_at"),
        ended_at=_parse_time(t["ended_at"], "training.ended_at"),
        duration_s=t["duration_s"],
        dataset_id=dataset_id,
        artifact_path=artifact.get("path"),
        artifact_sha256=artifact.get("sha256"),
        artifact_size=artifact.get("size"),
        error=t["error"],
        run_by=t["run_by"],
        host=t["host"],
        git_commit=t["git_commit"],
        context=t["context"],
    )
    s.add(training)
    s.flush()
    params = [
        {"training_id": training.id, "key": key, "value": p["value"], "display": p["display"]}
        for key, p in sorted(t["params"].items())
    ]
    if params:
        s.execute(insert(schema.ParamRow), params)
    stages = [
        {
            "training_id": training.id,
            "position": stage["position"],
            "name": stage["name"],
            "status": stage["status"],
            "started_at": _parse_time(stage["started_at"], "stage.started_at"),
            "ended_at": _parse_time(stage["ended_at"], "stage.ended_at"),
            "duration_s": stage["duration_s"],
            "error": stage["error"],
            "params": stage["params"] or None,
        }
        for stage in t["stages"]
    ]
    if stages:
        s.execute(insert(schema.StageRow), stages)
    insert_metric_history(
        s,
        training.id,
        {key: [(p[0], _unfloat(p[1]), float(p[2])) for p in points] for key, points in t["metrics"].items()},
    )
    return training.id


def insert_metric_history(s: Session, training_id: int, metrics: Mapping[str, list[tuple[int, float, float]]]) -> int:
    """Insert a new training's metric points (per key, in logging order) and their summaries; returns the count.

    Summaries are computed the way the writer keeps them, so an imported training reads like a logged one.
    """
    from .._writer import Summary, _encode

    key_ids = metric_key_ids(s, metrics)
    summaries = []
    count = 0
    for key, points in sorted(metrics.items()):
        if not points:
            continue
        key_id = key_ids[key]
        summary = Summary()
        rows = []
        for step, value, ts in points:
            stored, kind = _encode(value)
            rows.append({"training_id": training_id, "key_id": key_id, "step": step, "value": stored, "kind": kind,
                         "ts": ts})  # fmt: skip
            summary.add(step, value)
        for start in range(0, len(rows), _POINT_CHUNK):
            s.execute(insert(schema.MetricPointRow), rows[start : start + _POINT_CHUNK])
        count += len(rows)
        summaries.append(summary.row(training_id, key_id, max(p[2] for p in points)))
    if summaries:
        s.execute(insert(schema.MetricSummaryRow), summaries)
    return count


def _import_evaluations(s: Session, version_id: int, doc: Mapping[str, Any]) -> None:
    e = schema.EvaluationRow
    for item in doc["evaluations"]:
        found = s.execute(select(e.version_id).where(e.uuid == item["uuid"])).scalar_one_or_none()
        if found is not None:
            if found != version_id:
                raise ValidationError(
                    f"evaluation {item['uuid']} is already in this ledger for another version; nothing was imported",
                    value=item["uuid"],
                )
            continue
        dataset_id = get_or_create_dataset(s, item["dataset"]) if item["dataset"] is not None else None
        row = schema.EvaluationRow(
            uuid=item["uuid"],
            version_id=version_id,
            dataset_name=item["dataset_name"],
            dataset_id=dataset_id,
            evaluated_at=_parse_time(item["evaluated_at"], "evaluation.evaluated_at"),
            evaluated_by=item["evaluated_by"],
            description=item["description"],
        )
        s.add(row)
        s.flush()
        values = {k: _unfloat(v) for k, v in item["metrics"].items()}
        if values:
            add_evaluation_metrics(s, row.id, values)


def _find_deployment(s: Session, model_id: int, ref: Mapping[str, Any]) -> int | None:
    d, v = schema.DeploymentRow, schema.VersionRow
    return s.execute(
        select(d.id)
        .join(v, v.id == d.version_id)
        .where(
            d.model_id == model_id,
            d.environment == ref["environment"],
            v.number == ref["version"],
            d.deployed_at == _parse_time(ref["deployed_at"], "deployment.deployed_at"),
            d.action == ref["action"],
        )
        .limit(1)
    ).scalar_one_or_none()


def _import_deployments(s: Session, placed: list[tuple[int, int, dict[str, Any]]]) -> None:
    """Deployments of every document, oldest first, so links to earlier ones (replaces, rollback_of) resolve."""
    entries = []
    for model_id, version_id, doc in placed:
        for item in doc["deployments"]:
            entries.append(
                (_parse_time(item["deployed_at"], "deployment.deployed_at"), model_id, version_id, doc, item)
            )
    entries.sort(key=lambda e: (e[0], e[1], e[4]["environment"], e[4]["action"]))
    d = schema.DeploymentRow
    created: list[tuple[int, int, Mapping[str, Any]]] = []
    for moment, model_id, version_id, doc, item in entries:
        same = and_(
            d.model_id == model_id,
            d.version_id == version_id,
            d.environment == item["environment"],
            d.deployed_at == moment,
            d.action == item["action"],
        )
        existing = s.execute(select(d.id, d.status).where(same)).one_or_none()
        ended = _parse_time(item["ended_at"], "deployment.ended_at")
        if existing is not None:
            if existing[1] != item["status"]:  # it ended in the source since the last import: status and end only
                s.execute(update(d).where(d.id == existing[0]).values(status=item["status"], ended_at=ended))
            continue
        if item["status"] == ACTIVE:
            other = s.execute(
                select(d.id).where(d.model_id == model_id, d.environment == item["environment"], d.status == ACTIVE)
            ).first()
            if other is not None:
                raise ValidationError(
                    f"{doc['model']['name']!r} already has an active deployment in {item['environment']!r} in this "
                    f"ledger; importing version {doc['version']['number']}'s would make two (import without "
                    "deployments to leave them out); nothing was imported",
                    value=item["environment"],
                )
        row = schema.DeploymentRow(
            model_id=model_id,
            version_id=version_id,
            environment=item["environment"],
            endpoint=item["endpoint"],
            status=item["status"],
            action=item["action"],
            deployed_at=moment,
            ended_at=ended,
            deployed_by=item["deployed_by"],
            reason=item["reason"],
        )
        s.add(row)
        s.flush()
        created.append((row.id, model_id, item))
        measured = item["production_metrics"]
        if measured:
            key_ids = metric_key_ids(s, [p["metric"] for p in measured])
            rows = []
            for point in measured:
                stored, kind = encode_float(_unfloat(point["value"]))
                rows.append(
                    {
                        "deployment_id": row.id,
                        "key_id": key_ids[point["metric"]],
                        "value": stored,
                        "kind": kind,
                        "measured_at": _parse_time(point["measured_at"], "measured_at"),
                    }
                )
            s.execute(insert(schema.ProductionMetricRow), rows)
    for row_id, model_id, item in created:  # links, once every imported deployment exists
        links = {
            column: _find_deployment(s, model_id, item[key])
            for column, key in (("replaces_id", "replaces"), ("rollback_of_id", "rollback_of"))
            if item[key] is not None
        }
        links = {k: found for k, found in links.items() if found is not None}
        if links:
            s.execute(update(d).where(d.id == row_id).values(**links))
