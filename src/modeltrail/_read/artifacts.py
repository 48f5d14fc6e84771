"""Reading artifacts, aliases, version tags and notes, and which version a selector names.

:func:`resolve` is the one rule for "which version": a number, what serves an environment now
(or at a past moment), an alias, else the latest. The serving process and ``load_model`` share it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._errors import NotFoundError, ValidationError
from .._records import AliasRecord, ArtifactRecord, RecordList, RegistryView, VersionNotes
from .._rows import resolve_model, resolve_version
from .._values import check_environment, check_time
from .deployments import current_deployment, deployment_at


def resolve(
    s: Session,
    model_ref: Any,
    *,
    version: int | None = None,
    environment: str | None = None,
    at: dt.datetime | dt.date | None = None,
    alias: str | None = None,
) -> tuple[schema.ModelRow, schema.VersionRow]:
    """The version a caller means: ``version``, or what serves ``environment`` (now or ``at``), or ``alias``."""
    given = [k for k, v in (("version", version), ("environment", environment), ("alias", alias)) if v is not None]
    if len(given) > 1:
        raise ValidationError(f"name the version one way, got {' and '.join(given)}", value=given)
    if at is not None and environment is None:
        raise ValidationError("at= needs environment= (what served there at that moment)", value=at)
    model = resolve_model(s, model_ref)
    if environment is not None:
        environment = check_environment(environment)
        found = (
            current_deployment(s, model.id, environment) if at is None else deployment_at(s, model.id, environment, at)
        )
        if found is None:
            when = "now" if at is None else f"at {check_time(at).isoformat()}"
            raise NotFoundError(f"no version of model {model.name!r} serves {environment!r} {when}", value=environment)
        return model, resolve_version(s, model, found.version)
    if alias is not None:
        t = schema.VersionAliasRow
        version_id = s.execute(select(t.version_id).where(t.model_id == model.id, t.alias == alias)).scalar()
        if version_id is None:
            known = sorted(s.execute(select(t.alias).where(t.model_id == model.id)).scalars())
            raise NotFoundError(
                f"model {model.name!r} has no alias {alias!r}" + (f" (it has {', '.join(known)})" if known else ""),
                value=alias,
            )
        return model, s.execute(select(schema.VersionRow).where(schema.VersionRow.id == version_id)).scalar_one()
    return model, resolve_version(s, model, version)


def artifact_records(s: Session, model: schema.ModelRow, training_ids: list[int]) -> RecordList[ArtifactRecord]:
    a, v = schema.ArtifactRow, schema.VersionRow
    rows = s.execute(
        select(a, v.number)
        .outerjoin(v, v.training_id == a.training_id)
        .where(a.training_id.in_(training_ids))
        .order_by(a.training_id, a.name != "model", a.name)
    ).all()
    return RecordList(_record(model.name, row, number) for row, number in rows)


def _record(model: str, a: schema.ArtifactRow, number: int | None) -> ArtifactRecord:
    return ArtifactRecord(
        model=model, version=number, training_id=a.training_id, name=a.name, kind=a.kind, sha256=a.sha256,
        size=a.size, files=a.files, media_type=a.media_type, role=a.role, flavor=a.flavor, info=a.flavor_info,
        source_path=a.source_path, store_url=a.store_url, key=a.key, state=a.state, created_at=a.created_at,
        stored_at=a.stored_at,
    )  # fmt: skip


def version_artifacts(s: Session, model_ref: Any, number: int | None = None) -> RecordList[ArtifactRecord]:
    """Every artifact of a version (the latest by default), ``model`` first."""
    model = resolve_model(s, model_ref)
    version = resolve_version(s, model, number)
    return artifact_records(s, model, [version.training_id])


def one_artifact(s: Session, model: schema.ModelRow, version: schema.VersionRow, name: str) -> ArtifactRecord:
    a = schema.ArtifactRow
    row = s.execute(select(a).where(a.training_id == version.training_id, a.name == name)).scalar_one_or_none()
    if row is None:
        names = sorted(s.execute(select(a.name).where(a.training_id == version.training_id)).scalars())
        has = f"its artifacts are {', '.join(names)}" if names else "it has no artifacts"
        raise NotFoundError(
            f"version {version.number} of model {model.name!r} has no artifact named {name!r} ({has})", value=name
        )
    return _record(model.name, row, version.number)


def aliases(s: Session, model_ref: Any) -> RecordList[AliasRecord]:
    model = model_ref if isinstance(model_ref, schema.ModelRow) else resolve_model(s, model_ref)
    t, v = schema.VersionAliasRow, schema.VersionRow
    rows = s.execute(
        select(t.alias, v.number, t.set_at, t.set_by)
        .join(v, v.id == t.version_id)
        .where(t.model_id == model.id)
        .order_by(t.alias)
    ).all()
    return RecordList(AliasRecord(model.name, alias, number, at, by) for alias, number, at, by in rows)


def notes_by_version(
    s: Session, model: schema.ModelRow, alias_rows: RecordList[AliasRecord] | None = None
) -> dict[int, VersionNotes]:
    """Every version's description, tags and aliases that has any, by version number (two queries, three without
    ``alias_rows``)."""
    v, n, t = schema.VersionRow, schema.VersionNoteRow, schema.VersionTagRow
    descriptions = dict(
        s.execute(select(v.number, n.description).join(n, n.version_id == v.id).where(v.model_id == model.id)).all()
    )
    tags: dict[int, dict[str, str]] = {}
    for number, key, value in s.execute(
        select(v.number, t.key, t.value).join(t, t.version_id == v.id).where(v.model_id == model.id).order_by(t.key)
    ):
        tags.setdefault(number, {})[key] = value
    names: dict[int, list[str]] = {}
    for a in alias_rows if alias_rows is not None else aliases(s, model):
        names.setdefault(a.version, []).append(a.alias)
    return {
        number: VersionNotes(model.name, number, descriptions.get(number), tags.get(number, {}), names.get(number, []))
        for number in sorted({*descriptions, *tags, *names})
    }


def registry_view(s: Session, model_ref: Any) -> RegistryView:
    """Aliases, notes and versioned artifacts of a model in five queries, however many versions it has."""
    model = resolve_model(s, model_ref)
    found = aliases(s, model)
    a, v = schema.ArtifactRow, schema.VersionRow
    rows = s.execute(
        select(a, v.number)
        .join(v, v.training_id == a.training_id)
        .where(v.model_id == model.id)
        .order_by(v.number.desc(), a.name != "model", a.name)
    ).all()
    artifacts = RecordList(_record(model.name, row, number) for row, number in rows)
    return RegistryView(found, notes_by_version(s, model, found), artifacts)


def version_notes(s: Session, model_ref: Any, number: int | None = None) -> VersionNotes:
    model = resolve_model(s, model_ref)
    version = resolve_version(s, model, number)
    return notes_by_version(s, model).get(version.number, VersionNotes(model.name, version.number, None))


def setting(s: Session, key: str) -> str | None:
    return s.execute(select(schema.LedgerSettingRow.value).where(schema.LedgerSettingRow.key == key)).scalar()
