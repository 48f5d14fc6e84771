"""Artifact rows, version aliases, tags and notes, and the ledger's shared settings.

An artifact row is written by the writer thread once the file is hashed (and stored, or staged for
an unreachable store): an upsert on (training, name), so a replay from the spool changes nothing and
logging a name again in one training keeps the last file. Aliases, tags and notes are a person's
registry work, each with its audit event in the same transaction, after the model row is locked
(two people moving one alias queue behind each other).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._audit import record_event
from .._errors import NotFoundError
from .._rows import resolve_model, resolve_version
from .._store import upsert

if TYPE_CHECKING:
    from .._store import Store

#: The ledger setting naming the artifact store every client of the ledger uses.
ARTIFACT_STORE = "artifact_store"


def add_artifact(s: Session, training_id: int, row: Mapping[str, Any]) -> None:
    values = {
        "training_id": training_id,
        "name": row["name"],
        "kind": row["kind"],
        "sha256": row["sha256"],
        "size": row["size"],
        "files": row["files"],
        "media_type": row.get("media_type"),
        "role": row.get("role"),
        "flavor": row.get("flavor"),
        "flavor_info": row.get("info"),
        "source_path": row.get("path"),
        "store_url": row.get("store_url"),
        "key": row.get("key"),
        "state": row["state"],
        "created_at": schema.from_timestamp(row["logged_ts"]),
        "stored_at": schema.from_timestamp(row["stored_ts"]) if row.get("stored_ts") else None,
    }
    changing = [c for c in values if c not in ("training_id", "name")]
    upsert(s, schema.ArtifactRow.__table__, [values], keys=["training_id", "name"], update=changing)


def mark_stored(s: Session, sha256: str, stored_ts: float) -> int:
    """Artifacts with this digest that waited for the store are stored now; returns how many."""
    a = schema.ArtifactRow
    result = s.execute(
        update(a)
        .where(a.sha256 == sha256, a.state == "pending")
        .values(state="stored", stored_at=schema.from_timestamp(stored_ts))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def model_artifact_fields(s: Session, training_id: int) -> dict[str, Any] | None:
    """The training's ``model`` artifact as the training row keeps it (path, sha256, size), if one was logged."""
    a = schema.ArtifactRow
    row = s.execute(
        select(a.source_path, a.sha256, a.size).where(a.training_id == training_id, a.name == "model")
    ).one_or_none()
    return None if row is None else {"path": row[0], "sha256": row[1], "size": row[2]}


def record_setting(s: Session, key: str, value: str) -> str:
    """Keep ``value`` for ``key`` unless the ledger has one already; returns the ledger's value."""
    upsert(
        s, schema.LedgerSettingRow.__table__, [{"key": key, "value": value, "set_at": schema.utcnow()}], keys=["key"]
    )
    return str(s.execute(select(schema.LedgerSettingRow.value).where(schema.LedgerSettingRow.key == key)).scalar_one())


# ------------------------------------------------------------------ registry
def set_alias(s: Session, store: Store, model_ref: Any, alias: str, number: int, *, set_by: str | None) -> None:
    model = resolve_model(s, model_ref, for_update=True)
    version = resolve_version(s, model, number)
    t = schema.VersionAliasRow
    current = s.execute(
        select(t.id, schema.VersionRow.number)
        .join(schema.VersionRow, schema.VersionRow.id == t.version_id)
        .where(t.model_id == model.id, t.alias == alias)
    ).one_or_none()
    now = schema.utcnow()
    if current is None:
        s.add(t(model_id=model.id, alias=alias, version_id=version.id, set_at=now, set_by=set_by))
    elif current[1] == number:
        return  # already there: nothing changes, nothing to audit
    else:
        s.execute(update(t).where(t.id == current[0]).values(version_id=version.id, set_at=now, set_by=set_by))
    record_event(
        s, store, action="version.alias", entity="model", entity_id=model.id,
        before={"alias": alias, "version": current[1]} if current else None,
        after={"model": model.name, "alias": alias, "version": number, "set_by": set_by},
    )  # fmt: skip


def delete_alias(s: Session, store: Store, model_ref: Any, alias: str) -> int:
    """Remove ``alias``; returns the version it named. An alias that does not exist is a NotFoundError."""
    model = resolve_model(s, model_ref, for_update=True)
    t = schema.VersionAliasRow
    current = s.execute(
        select(t.id, schema.VersionRow.number)
        .join(schema.VersionRow, schema.VersionRow.id == t.version_id)
        .where(t.model_id == model.id, t.alias == alias)
    ).one_or_none()
    if current is None:
        raise NotFoundError(f"model {model.name!r} has no alias {alias!r}", value=alias)
    s.execute(delete(t).where(t.id == current[0]))
    record_event(
        s, store, action="version.alias.delete", entity="model", entity_id=model.id,
        before={"alias": alias, "version": current[1]}, after={"model": model.name, "alias": alias},
    )  # fmt: skip
    return int(current[1])


def tag_version(
    s: Session, store: Store, model_ref: Any, number: int, tags: Mapping[str, str | None]
) -> schema.VersionRow:
    """Set tags on a version (a None value removes the key); the audit event keeps old and new values."""
    model = resolve_model(s, model_ref, for_update=True)
    version = resolve_version(s, model, number)
    t = schema.VersionTagRow
    before = {k: v for k, v in s.execute(select(t.key, t.value).where(t.version_id == version.id))}
    removed = [k for k, v in tags.items() if v is None and k in before]
    kept = {k: v for k, v in tags.items() if v is not None and before.get(k) != v}
    if not removed and not kept:
        return version
    if removed:
        s.execute(delete(t).where(t.version_id == version.id, t.key.in_(removed)))
    rows = [{"version_id": version.id, "key": k, "value": v} for k, v in sorted(kept.items())]
    upsert(s, t.__table__, rows, keys=["version_id", "key"], update=["value"])
    record_event(
        s, store, action="version.tag", entity="version", entity_id=version.id,
        before={k: before.get(k) for k in [*removed, *kept]},
        after={"model": model.name, "version": number, "tags": {**kept, **dict.fromkeys(removed)}},
    )  # fmt: skip
    return version


def describe_version(
    s: Session, store: Store, model_ref: Any, number: int, description: str, *, updated_by: str | None
) -> schema.VersionRow:
    model = resolve_model(s, model_ref, for_update=True)
    version = resolve_version(s, model, number)
    n = schema.VersionNoteRow
    before = s.execute(select(n.description).where(n.version_id == version.id)).scalar_one_or_none()
    if before == description:
        return version
    row = {
        "version_id": version.id,
        "description": description,
        "updated_at": schema.utcnow(),
        "updated_by": updated_by,
    }
    upsert(s, n.__table__, [row], keys=["version_id"], update=["description", "updated_at", "updated_by"])
    record_event(
        s, store, action="version.describe", entity="version", entity_id=version.id,
        before={"description": before} if before is not None else None,
        after={"model": model.name, "version": number, "description": description},
    )  # fmt: skip
    return version
