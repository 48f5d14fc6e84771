"""Import: load standard records (see :mod:`.export`) into this ledger, all or nothing.

An import is one transaction with one ``ledger.import`` audit event: it lands whole or not at
all, and an import that finds everything already there (the same export again) changes no row
and writes no event. Every version it places is made by :func:`modeltrail._operations.versions.create_version`
(with its ``version.create`` event), keeping the document's number, parent and param diff, and
its metric history goes through :mod:`modeltrail._operations.metrics`, so it reads like a
logged one. A version number that is free is taken as it is; one already holding the same
training (same uuid) is left alone, so importing twice changes nothing; one holding different
content is refused with a :class:`~modeltrail._errors.ValidationError` and nothing is written.
Every time is kept, so export -> import -> export gives the same bytes.

A deployment already in this ledger is only ever moved forward: an ``active`` one the document
shows ended (it ended in the source since the last import) takes that status and end, and an
ended one is never made ``active`` again, whatever the document says: this ledger may have
superseded it itself since, and reopening it would leave two active deployments in one
environment.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import and_, insert, select, update
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._audit import record_event
from .._errors import ValidationError
from .._operations.evaluations import add_evaluation_metrics
from .._operations.metrics import insert_metric_history, metric_key_ids
from .._operations.trainings import add_params, get_or_create_dataset, get_or_create_model, set_tags
from .._operations.versions import create_version, lock_model
from .._rows import ACTIVE
from .._values import encode_float, float_from_json
from .format import schema_errors

if TYPE_CHECKING:
    from .._store import Store


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
    tags = 0
    for doc in docs:
        name, number = doc["model"]["name"], doc["version"]["number"]
        model_id, version_id, new, tags_added = _import_version(s, store, doc)
        (imported if new else skipped).append([name, number])
        tags += tags_added
        placed.append((model_id, version_id, doc))
        if on_document is not None:
            on_document()
    evaluations = sum(_import_evaluations(s, version_id, doc) for _, version_id, doc in placed)
    added, ended = _import_deployments(s, placed) if deployments else (0, [])
    result = ImportResult(imported=imported, skipped=skipped, documents=len(docs))
    if imported or tags or evaluations or added or ended:  # the same export again changes nothing, not even here
        record_event(
            s, store, action="ledger.import", entity="ledger", entity_id=(source or "import")[:64],
            after={"source": source, "imported": imported[:1000], "skipped": skipped[:1000],
                   "imported_count": len(imported), "skipped_count": len(skipped), "tags_added": tags,
                   "evaluations_added": evaluations, "deployments_added": added, "deployments_ended": ended},
        )  # fmt: skip
    return result


def _import_version(s: Session, store: Store, doc: Mapping[str, Any]) -> tuple[int, int, bool, int]:
    """Place one document's version; (model id, version id, whether it was new, model tags added)."""
    m, v, t = doc["model"], doc["version"], doc["training"]
    number = v["number"]
    model = get_or_create_model(
        s, store, m["name"], framework=m["framework"], model_type=m["model_type"], description=m["description"]
    )
    model = lock_model(s, model.id)  # serialise with trainings numbering versions
    tags = {}
    if m["tags"]:  # an import adds tags, never replaces one
        have = set(s.execute(select(schema.ModelTagRow.key).where(schema.ModelTagRow.model_id == model.id)).scalars())
        tags = {k: value for k, value in m["tags"].items() if k not in have}
        set_tags(s, model.id, tags, overwrite=False)
    sv, st = schema.VersionRow, schema.TrainingRow
    existing = s.execute(
        select(sv.id, st.uuid).join(st, st.id == sv.training_id).where(sv.model_id == model.id, sv.number == number)
    ).one_or_none()
    if existing is not None:
        if existing[1] == t["uuid"]:
            return model.id, existing[0], False, len(tags)
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
    row, _ = create_version(
        s, store, model, training_id, number=number, parent=v["parent"], artifact_path=v["artifact_path"],
        created_at=_parse_time(v["created_at"], "version.created_at"), diff=v["param_diff"],
    )  # fmt: skip
    return model.id, row.id, True, len(tags)


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
    add_params(s, training.id, {key: (p["value"], p["display"]) for key, p in sorted(t["params"].items())})
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
        {key: [(p[0], float_from_json(p[1]), float(p[2])) for p in points] for key, points in t["metrics"].items()},
    )
    return training.id


def _import_evaluations(s: Session, version_id: int, doc: Mapping[str, Any]) -> int:
    """Add the document's evaluations this ledger lacks; how many were added."""
    e = schema.EvaluationRow
    added = 0
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
        values = {k: float_from_json(v) for k, v in item["metrics"].items()}
        if values:
            add_evaluation_metrics(s, row.id, values)
        added += 1
    return added


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


def _import_deployments(s: Session, placed: list[tuple[int, int, dict[str, Any]]]) -> tuple[int, list[int]]:
    """Deployments of every document, oldest first, so links to earlier ones (replaces, rollback_of) resolve.

    Returns (deployments added, ids of active ones it ended); see the module docstring for the second.
    """
    entries = []
    for model_id, version_id, doc in placed:
        for item in doc["deployments"]:
            entries.append(
                (_parse_time(item["deployed_at"], "deployment.deployed_at"), model_id, version_id, doc, item)
            )
    entries.sort(key=lambda e: (e[0], e[1], e[4]["environment"], e[4]["action"]))
    d = schema.DeploymentRow
    created: list[tuple[int, int, Mapping[str, Any]]] = []
    ended_ids: list[int] = []
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
            if existing[1] == ACTIVE and item["status"] != ACTIVE:  # ended in the source since the last import
                s.execute(update(d).where(d.id == existing[0]).values(status=item["status"], ended_at=ended))
                ended_ids.append(existing[0])
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
                stored, kind = encode_float(float_from_json(point["value"]))
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
    return len(created), ended_ids


def read_sources(paths: Sequence[str], *, stdin: TextIO | None = None) -> list[dict[str, Any]]:
    """Exported documents from JSON / JSON Lines files or directories; ``-`` reads ``stdin``."""
    documents: list[dict[str, Any]] = []
    for path in paths:
        if path == "-":
            documents += parse_documents((stdin or sys.stdin).read(), source="<stdin>")
        else:
            documents += read_documents(path)
    return documents
