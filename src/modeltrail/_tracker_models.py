"""The registry holds the model: the artifact store, loading a version back, aliases, tags and notes.

A mixin of ``Tracker`` (``_tracker.py`` keeps to trainings and questions). Which store a Tracker
uses, first found wins: ``Tracker(uri, artifacts=URL)``, ``MODELTRAIL_ARTIFACTS``, the store recorded
in the ledger (the first explicit one is recorded, without credentials, so every client of the
database finds it), and for an SQLite file a folder beside it (``<name>-artifacts/``). A server
ledger with none of these records each file's path on the machine that logged it, and says once
how to configure a store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._artifacts import ENV_ARTIFACTS, ArtifactStore, Wanted, cache_root, fetch
from ._errors import ModeltrailWarning, StorageError, ValidationError, user_stacklevel
from ._loaders import load
from ._operations import artifacts as artifact_ops
from ._read import artifacts as artifact_reads
from ._records import AliasRecord, ArtifactRecord, ModelFile, RecordList, RegistryView, VersionNotes
from ._store import Store
from ._values import USER_MAX, check_chars, check_tags, check_text

ALIAS_MAX = 128
#: Databases this process already warned have no artifact store.
_WARNED: set[str] = set()
#: Descriptions of versions: long notes are fine, a novel is not.
NOTES_MAX = 10_000


class ModelRegistry:
    """Artifacts, model loading, aliases, tags and notes (mixed into ``Tracker``)."""

    _artifacts_url: str | None
    _artifact_options: dict[str, Any]
    _cache_dir: str | None
    _artifact_store: ArtifactStore | None
    _store_resolved: bool
    uri: str

    @property
    def store(self) -> Store:
        raise NotImplementedError  # Tracker's own property

    # ------------------------------------------------------------------ the store
    def _init_artifacts(
        self, artifacts: str | os.PathLike[str] | None, options: Mapping[str, Any] | None, cache_dir: Any
    ) -> None:
        self._artifacts_url = os.fspath(artifacts) if artifacts is not None else None
        self._artifact_options = dict(options or {})
        self._cache_dir = os.fspath(cache_dir) if cache_dir is not None else None
        self._artifact_store = None
        self._store_resolved = False
        if self._artifacts_url is not None:  # a URL that cannot work is refused here, at the call
            ArtifactStore(self._artifacts_url, self._artifact_options).check()

    @property
    def artifact_store(self) -> ArtifactStore | None:
        """Where this Tracker stores artifacts (see the module docstring), or None: paths only."""
        if not self._store_resolved:
            self._artifact_store = self._resolve_store()
            # Unread while the database is away: asked again once it answers (the ledger may name a store).
            self._store_resolved = self._artifact_store is not None or self.store.unavailable is None
        return self._artifact_store

    def _resolve_store(self) -> ArtifactStore | None:
        explicit = self._artifacts_url or os.environ.get(ENV_ARTIFACTS) or None
        store = self.store
        if explicit:
            chosen = ArtifactStore(explicit, self._artifact_options)
            chosen.check()
            if store.unavailable is None:
                # A read-only role, a database gone away: the store still works for this client.
                with contextlib.suppress(StorageError):
                    store.run(lambda s: artifact_ops.record_setting(s, artifact_ops.ARTIFACT_STORE, chosen.public))
            return chosen
        recorded = None
        if store.unavailable is None:
            try:
                with store.transaction(read_only=True) as s:
                    recorded = artifact_reads.setting(s, artifact_ops.ARTIFACT_STORE)
            except StorageError:
                recorded = None
        if recorded:
            return ArtifactStore(recorded, self._artifact_options)
        if store.dialect == "sqlite" and store.url.database and store.url.database != ":memory:":
            db = Path(store.url.database).expanduser().resolve()
            if not str(store.url.database).startswith("file:"):
                return ArtifactStore(str(db.with_name(f"{db.stem}-artifacts")), self._artifact_options)
        if store.unavailable is not None or store.display_uri in _WARNED:
            return None  # the ledger could not be asked; or said once in this process already
        _WARNED.add(store.display_uri)
        warnings.warn(
            f"modeltrail: {store.display_uri} has no artifact store, so artifacts are recorded by their path on this "
            f'machine only; pass Tracker(uri, artifacts="s3://bucket/prefix") or set {ENV_ARTIFACTS} once '
            "(it is recorded in the ledger for every client)",
            ModeltrailWarning,
            stacklevel=user_stacklevel(),
        )
        return None

    def _store_for(self, record: ArtifactRecord) -> ArtifactStore | None:
        mine = self.artifact_store
        if record.store_url is None or (mine is not None and mine.public == record.store_url):
            return mine
        return ArtifactStore(record.store_url, self._artifact_options)

    # ------------------------------------------------------------------ reading
    def artifacts(self, model: str | int, *, version: int | None = None) -> RecordList[ArtifactRecord]:
        """The artifacts of one version (the latest by default), the model first."""
        with self.store.transaction(read_only=True) as s:
            return artifact_reads.version_artifacts(s, model, version)

    def model_artifact(
        self,
        model: str | int,
        *,
        version: int | None = None,
        environment: str | None = None,
        at: dt.datetime | dt.date | None = None,
        alias: str | None = None,
        artifact: str = "model",
    ) -> ArtifactRecord:
        """The artifact (``model`` by default) of the version named by number, environment (now or ``at``) or
        alias, else the latest: its record carries the resolved version number. Fetches nothing."""
        with self.store.transaction(read_only=True) as s:
            found_model, found = artifact_reads.resolve(
                s, model, version=version, environment=environment, at=at, alias=alias
            )
            return artifact_reads.one_artifact(s, found_model, found, artifact)

    def download_model(
        self,
        model: str | int,
        *,
        version: int | None = None,
        environment: str | None = None,
        at: dt.datetime | dt.date | None = None,
        alias: str | None = None,
        artifact: str = "model",
        dest: str | os.PathLike[str] | None = None,
    ) -> ModelFile:
        """Fetch the artifact into the local cache (keyed by sha256) and verify every file against the ledger.

        Returns the verified local path and the version it resolved to; with ``dest`` the file or folder
        is also copied into that directory (under its original name).
        """
        record = self.model_artifact(
            model, version=version, environment=environment, at=at, alias=alias, artifact=artifact
        )
        label = f"model {record.model!r} version {record.version}, artifact {record.name!r}"
        wanted = Wanted(label, record.sha256, record.kind, record.state, record.key, record.source_path)
        path = fetch(wanted, self._store_for(record), cache_root(self._cache_dir))
        if dest is not None:
            path = _copy_out(path, Path(dest), record)
        return ModelFile(record.model, int(record.version or 0), str(path), record)

    def load_model(
        self,
        model: str | int,
        *,
        version: int | None = None,
        environment: str | None = None,
        at: dt.datetime | dt.date | None = None,
        alias: str | None = None,
    ) -> Any:
        """The version's ``model`` artifact, fetched, verified (sha256 before any deserialization) and loaded
        by its flavor: scikit-learn (joblib or skops), Keras, Lightning, PyTorch; other files as their path."""
        found = self.download_model(model, version=version, environment=environment, at=at, alias=alias)
        label = f"model {found.model!r} version {found.version}"
        artifact = found.artifact
        return load(Path(found.path), artifact.flavor, artifact.info, label=label, name=artifact.source_path or "")

    # ------------------------------------------------------------------ registry
    def set_alias(self, model: str | int, alias: str, *, version: int, set_by: str | None = None) -> AliasRecord:
        """Point ``alias`` (``champion``) at ``version``, moving it if it named another; audited."""
        alias = _check_alias(alias)
        set_by = check_text("set_by", set_by, USER_MAX)
        store = self.store
        store.run(lambda s: artifact_ops.set_alias(s, store, model, alias, version, set_by=set_by))
        return next(a for a in self.aliases(model) if a.alias == alias)

    def delete_alias(self, model: str | int, alias: str) -> int:
        """Remove ``alias``; returns the version it named (audited). A missing alias is a NotFoundError."""
        alias = _check_alias(alias)
        store = self.store
        return store.run(lambda s: artifact_ops.delete_alias(s, store, model, alias))

    def aliases(self, model: str | int) -> RecordList[AliasRecord]:
        with self.store.transaction(read_only=True) as s:
            return artifact_reads.aliases(s, model)

    def tag_version(self, model: str | int, version: int, tags: Mapping[str, str | None]) -> VersionNotes:
        """Set tags on a version after the fact (a None value removes that tag); audited with old and new values."""
        if not isinstance(tags, Mapping):
            raise ValidationError(f"tags must be a mapping of key to value, got {tags!r}", value=tags)
        removed = [k for k, v in tags.items() if v is None]
        checked: dict[str, str | None] = dict(check_tags({k: v for k, v in tags.items() if v is not None}))
        checked.update(dict.fromkeys(check_tags(dict.fromkeys(removed, "")), None))
        store = self.store
        store.run(lambda s: artifact_ops.tag_version(s, store, model, version, checked))
        return self.version_notes(model, version)

    def describe_version(
        self, model: str | int, version: int, description: str, *, updated_by: str | None = None
    ) -> VersionNotes:
        """Write a version's description (notes) after the fact; the audit trail keeps the previous text."""
        text = check_text("description", description, NOTES_MAX)
        if text is None:
            raise ValidationError("description must be a string, got None", value=description)
        updated_by = check_text("updated_by", updated_by, USER_MAX)
        store = self.store
        store.run(lambda s: artifact_ops.describe_version(s, store, model, version, text, updated_by=updated_by))
        return self.version_notes(model, version)

    def version_notes(self, model: str | int, version: int | None = None) -> VersionNotes:
        """A version's description, tags and aliases (the latest version by default)."""
        with self.store.transaction(read_only=True) as s:
            return artifact_reads.version_notes(s, model, version)

    def registry_view(self, model: str | int) -> RegistryView:
        """A model's aliases, each version's notes and every versioned artifact, in one read (a few queries)."""
        with self.store.transaction(read_only=True) as s:
            return artifact_reads.registry_view(s, model)


def _check_alias(alias: Any) -> str:
    if not isinstance(alias, str) or not alias.strip() or len(alias) > ALIAS_MAX or alias != alias.strip():
        raise ValidationError(
            f"an alias is 1 to {ALIAS_MAX} characters without outer spaces, got {alias!r}", value=alias
        )
    check_chars(alias, "alias")
    if alias.isdigit():
        raise ValidationError(f"an alias cannot be a number (it would read as a version): {alias!r}", value=alias)
    return alias


def _copy_out(path: Path, dest: Path, record: ArtifactRecord) -> Path:
    """Copy a verified cached file or folder into ``dest`` under its original name (or the artifact's)."""
    dest.mkdir(parents=True, exist_ok=True)
    name = Path(record.source_path).name if record.source_path else record.name
    target = dest / name
    if path.is_dir():
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(path, target)
    else:
        shutil.copyfile(path, target)
    return target
