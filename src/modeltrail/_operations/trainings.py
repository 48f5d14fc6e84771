"""Every write of a training's life as an idempotent, serialisable operation.

A training's start, params, dataset, metric batches and finish are plain dicts
keyed by the training's client-made ``uuid``. The same functions apply them when
the database is up (straight from the caller or the writer) and when the local
spool replays them after an outage, and applying one twice changes nothing:

* start: ``trainings.uuid`` is unique; a second start finds the first;
* params and datasets: upserts on their natural keys;
* metric batches (written by :mod:`.metrics`): each carries a ``batch_id`` inserted into
  ``ingested_batches`` in the same transaction as its points, so a replayed batch is
  recognised and skipped;
* finish: a training that is no longer running is left alone, and
  ``versions.training_id`` is unique (the version itself is made by :mod:`.versions`).

A finish replayed from the spool after an outage gets the next free number when it reaches
the database (numbers are never reassigned, so a version another process made meanwhile keeps
its number and a replayed one may come after it), but the version's ``created_at`` is the
moment the training finished on its own machine (``ended_ts`` of the finish), never the replay's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._audit import record_event
from .._errors import NotFoundError
from .._records import VersionRecord
from .._store import upsert
from .artifacts import model_artifact_fields
from .versions import create_version, lock_model, version_record

if TYPE_CHECKING:
    from .._store import Store


def training_id(s: Session, uuid: str) -> int:
    found = s.execute(select(schema.TrainingRow.id).where(schema.TrainingRow.uuid == uuid)).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"no training with uuid {uuid!r}", value=uuid)
    return found


def start_training(s: Session, store: Store, op: Mapping[str, Any]) -> tuple[int, int]:
    """Create the training (and its model, dataset, params); returns (model_id, training_id)."""
    existing = s.execute(
        select(schema.TrainingRow.model_id, schema.TrainingRow.id).where(schema.TrainingRow.uuid == op["uuid"])
    ).one_or_none()
    if existing is not None:
        return existing[0], existing[1]
    model = get_or_create_model(
        s, store, op["model"], framework=op.get("framework"), model_type=op.get("model_type"),
        description=op.get("description"),
    )  # fmt: skip
    if op.get("tags"):
        set_tags(s, model.id, op["tags"])
    dataset_id = get_or_create_dataset(s, op["dataset"]) if op.get("dataset") else None
    context = op.get("context") or {}
    training = schema.TrainingRow(
        uuid=op["uuid"],
        model_id=model.id,
        status="running",
        started_at=schema.from_timestamp(op["started_ts"]),
        dataset_id=dataset_id,
        run_by=context.get("user"),
        host=context.get("host"),
        git_commit=(context.get("git") or {}).get("commit"),
        context=context,
    )
    s.add(training)
    s.flush()
    add_params(s, training.id, op.get("params") or {})
    return model.id, training.id


def add_params(s: Session, training_id: int, params: Mapping[str, tuple[Any, str]]) -> None:
    """Insert params (stored value, display); a key already there is kept as it is."""
    rows = [{"training_id": training_id, "key": k, "value": v, "display": d} for k, (v, d) in params.items()]
    upsert(s, schema.ParamRow.__table__, rows, keys=["training_id", "key"])


def add_stage(s: Session, training_id: int, stage: Mapping[str, Any]) -> None:
    """Record one ended stage; its (training, position) key makes a replay a no-op."""
    row = {
        "training_id": training_id,
        "position": stage["position"],
        "name": stage["name"],
        "status": stage["status"],
        "started_at": schema.from_timestamp(stage["started_ts"]),
        "ended_at": schema.from_timestamp(stage["ended_ts"]),
        "duration_s": stage["duration_s"],
        "error": stage.get("error"),
        "params": stage.get("params") or None,
    }
    upsert(s, schema.StageRow.__table__, [row], keys=["training_id", "position"])


def attach_dataset(s: Session, training_id: int, dataset: Mapping[str, Any]) -> None:
    dataset_id = get_or_create_dataset(s, dataset)
    s.execute(update(schema.TrainingRow).where(schema.TrainingRow.id == training_id).values(dataset_id=dataset_id))


def finish_training(s: Session, store: Store, training_id: int, op: Mapping[str, Any]) -> VersionRecord | None:
    """Mark the training ended; a finished one becomes its model's next version (see ``versions``)."""
    status = op["status"]
    # Locking reads only until the model row is locked (see ``versions``).
    row = s.execute(
        select(schema.TrainingRow.model_id, schema.TrainingRow.status)
        .where(schema.TrainingRow.id == training_id)
        .with_for_update()
    ).one()
    model_id, current = row
    versioned = status == "finished" and op.get("version", True)  # a tuner's non-best trial: finished, no version
    model = lock_model(s, model_id) if versioned else None
    if current != "running":  # applied before (a replay): report what exists
        version = s.execute(select(schema.VersionRow).where(schema.VersionRow.training_id == training_id)).scalar()
        return version_record(s, version) if version is not None else None
    # The model artifact's row (written by the writer before this finish) gives the training its fields;
    # a finish spooled by an older modeltrail carries them itself.
    artifact = op.get("artifact") or model_artifact_fields(s, training_id) or {}
    ended_at = schema.from_timestamp(op["ended_ts"])
    values: dict[str, Any] = {
        "status": status, "ended_at": ended_at, "duration_s": op["duration_s"],
        "error": op.get("error"), "artifact_path": artifact.get("path"), "artifact_sha256": artifact.get("sha256"),
        "artifact_size": artifact.get("size"),
    }  # fmt: skip
    if op.get("context"):
        context = s.execute(select(schema.TrainingRow.context).where(schema.TrainingRow.id == training_id)).scalar()
        values["context"] = {**(context or {}), **op["context"]}
    s.execute(update(schema.TrainingRow).where(schema.TrainingRow.id == training_id).values(**values))
    if model is None:
        return None
    # The version's time is the training's finish on the client, also when the spool replays it later.
    version, _ = create_version(s, store, model, training_id, artifact_path=artifact.get("path"), created_at=ended_at)
    return version_record(s, version, model_name=model.name)


# ----------------------------------------------------------------- helpers
def get_or_create_model(
    s: Session,
    store: Store,
    name: str,
    *,
    framework: str | None = None,
    model_type: str | None = None,
    description: str | None = None,
) -> schema.ModelRow:
    """The model row named ``name``, made if missing (a race is retried by :meth:`Store.run`)."""
    model = s.execute(select(schema.ModelRow).where(schema.ModelRow.name == name)).scalar_one_or_none()
    if model is None:
        model = schema.ModelRow(
            name=name, framework=framework, model_type=model_type, description=description, created_at=schema.utcnow()
        )
        s.add(model)
        s.flush()
        record_event(
            s, store, action="model.create", entity="model", entity_id=model.id,
            after={"name": name, "framework": framework, "model_type": model_type},
        )  # fmt: skip
        return model
    # Fill in what an earlier, less informed caller left empty; never overwrite.
    fill = {
        k: v
        for k, v in (("framework", framework), ("model_type", model_type), ("description", description))
        if v is not None and getattr(model, k) is None
    }
    if fill:
        s.execute(update(schema.ModelRow).where(schema.ModelRow.id == model.id).values(**fill))
    return model


def set_tags(s: Session, model_id: int, tags: Mapping[str, str], *, overwrite: bool = True) -> None:
    """Tag a model; ``overwrite=False`` keeps the value a key already has (an import adds, never replaces)."""
    rows = [{"model_id": model_id, "key": str(k), "value": str(v)} for k, v in sorted(tags.items())]
    upsert(s, schema.ModelTagRow.__table__, rows, keys=["model_id", "key"], update=["value"] if overwrite else None)


def get_or_create_dataset(s: Session, dataset: Mapping[str, Any]) -> int:
    table = schema.DatasetRow.__table__
    upsert(s, table, [{**dataset, "created_at": schema.utcnow()}], keys=["digest", "name"])
    return s.execute(
        select(table.c.id).where(table.c.digest == dataset["digest"], table.c.name == dataset["name"])
    ).scalar_one()
