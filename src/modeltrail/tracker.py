"""The entry point users hold: ``Tracker`` opens a ledger, starts trainings and answers questions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import queries
from .config import mask_password, resolve_uri
from .dataset import Dataset
from .records import MetricPoint, ModelRecord, RecordList, TrainingRecord, VersionRecord
from .store import Store, get_store
from .training import Training


class Tracker:
    """A handle on one ledger (database). Cheap to make; pickles as its URL only.

    ``uri`` is any SQLAlchemy URL: ``sqlite:///path.db`` (the default, from
    ``MODELTRAIL_URI`` or ``./modeltrail.db``), ``mysql+pymysql://user:pw@host/db``,
    ``postgresql+psycopg://user@host/db``.
    """

    def __init__(self, uri: str | None = None, *, create: bool = True) -> None:
        self.uri = resolve_uri(uri)
        self._create = create
        self._store: Store | None = None
        self.store  # noqa: B018 - connect now, so a bad URL or an old schema fails here

    def __repr__(self) -> str:
        return f"Tracker({mask_password(self.uri)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri, "create": self._create}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.uri = state["uri"]
        self._create = state["create"]
        self._store = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = get_store(self.uri, create=self._create)
        return self._store

    # ---------------------------------------------------------------- writing
    def training(
        self,
        model: str,
        *,
        framework: str | None = None,
        model_type: str | None = None,
        description: str | None = None,
        params: Mapping[str, Any] | None = None,
        dataset: Dataset | None = None,
        seeds: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Training:
        """Start a training of ``model`` (created on first use). Use it as a context manager."""
        return Training(
            self,
            model,
            framework=framework,
            model_type=model_type,
            description=description,
            params=params,
            dataset=dataset,
            seeds=seeds,
            tags=tags,
        )

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything logged through this ledger is written."""
        self.store.writer.flush(timeout)

    def close(self) -> None:
        """Flush and release the database connections of this ledger in this process."""
        from .store import _stores, _stores_lock

        store = self._store
        if store is None:
            return
        with _stores_lock:
            for key, value in list(_stores.items()):
                if value is store:
                    del _stores[key]
        store.close()
        self._store = None

    # ---------------------------------------------------------------- reading
    def model(self, name_or_id: str | int) -> ModelRecord:
        with self.store.transaction(read_only=True) as s:
            return queries.model_records(s, [queries.resolve_model(s, name_or_id)])[0]

    def models(
        self, *, framework: str | None = None, model_type: str | None = None, tag: str | None = None
    ) -> RecordList[ModelRecord]:
        with self.store.transaction(read_only=True) as s:
            return queries.find_models(s, framework=framework, model_type=model_type, tag=tag)

    def trainings(self, model: str | int | None = None, *, status: str | None = None) -> RecordList[TrainingRecord]:
        with self.store.transaction(read_only=True) as s:
            return queries.trainings(s, model, status=status)

    def get_training(self, training_id: int) -> TrainingRecord:
        with self.store.transaction(read_only=True) as s:
            return queries.training(s, training_id)

    def versions(self, model: str | int) -> RecordList[VersionRecord]:
        with self.store.transaction(read_only=True) as s:
            return queries.versions(s, model)

    def metric_history(self, training_or_version: Any, key: str, *, version: int | None = None) -> RecordList[MetricPoint]:
        """Every point of metric ``key``: of a training, a version record, or a model's version (latest by default)."""
        with self.store.transaction(read_only=True) as s:
            training_id = queries.resolve_training_id(s, training_or_version, version=version)
            return queries.metric_history(s, training_id, key)
