"""The core logger: one :class:`Training` is one fit of one model.

Starting and finishing touch the database directly (they are rare and must be
durable before the caller goes on); everything logged in between goes through the
store's background writer so that ``log_metric`` costs microseconds.
"""

from __future__ import annotations

import contextlib
import contextvars
import operator
import os
import threading
import time
import uuid as uuid_mod
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from . import schema
from .audit import record_event
from .context import capture
from .dataset import Dataset, path_digest
from .errors import ValidationError
from .records import VersionRecord
from .store import upsert
from .values import as_metric_value, encode_param, from_jsonable, param_diff, to_jsonable

if TYPE_CHECKING:
    from .store import Store
    from .tracker import Tracker

_now = time.time

#: The training whose ``with`` block is running in this context: adapters and autolog
#: log into it instead of starting their own (a decorated function that calls ``fit``).
_active: contextvars.ContextVar[Training | None] = contextvars.ContextVar("modeltrail_active", default=None)


def active_training() -> Training | None:
    """The training of the innermost ``with tracker.training(...)`` block of this thread/task, if any."""
    return _active.get()
MAX_KEY = 255
STATUSES = ("finished", "failed")


def check_model_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"model name must be a non-empty string, got {name!r}", value=name)
    if len(name) > schema.NAME_MAX:
        raise ValidationError(
            f"model name is {len(name)} characters, the limit is {schema.NAME_MAX}: {name[:40]!r}...", value=name
        )
    if name != name.strip():
        raise ValidationError(f"model name has leading or trailing whitespace: {name!r}", value=name)
    return name


def check_metric_key(key: Any) -> str:
    if not isinstance(key, str):
        raise ValidationError(f"metric key must be a string, got {type(key).__name__} {key!r}", value=key)
    if not key or len(key) > MAX_KEY:
        raise ValidationError(f"metric key must be 1 to {MAX_KEY} characters, got {key[:40]!r}", value=key)
    return key


def check_step(step: Any) -> int:
    if isinstance(step, bool) or isinstance(step, float):
        raise ValidationError(f"step must be a non-negative integer, got {step!r}", value=step)
    try:
        value = operator.index(step)
    except TypeError as e:
        raise ValidationError(f"step must be a non-negative integer, got {step!r}", value=step) from e
    if value < 0 or value > 2**62:
        raise ValidationError(f"step must be a non-negative integer, got {step!r}", value=step)
    return value


class Training:
    """A running training: log params, metrics and artifacts; leaving the ``with`` block finishes it."""

    def __init__(
        self,
        tracker: Tracker,
        model: str,
        *,
        framework: str | None = None,
        model_type: str | None = None,
        description: str | None = None,
        params: Mapping[str, Any] | None = None,
        dataset: Dataset | None = None,
        seeds: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.tracker = tracker
        self.model_name = check_model_name(model)
        if dataset is not None and not isinstance(dataset, Dataset):
            raise ValidationError(f"dataset must be a modeltrail.Dataset, got {type(dataset).__name__}", value=dataset)
        self.store: Store = tracker.store
        self.uuid = str(uuid_mod.uuid4())
        self.status = "running"
        self.version: VersionRecord | None = None
        self.error: str | None = None
        self.params: dict[str, Any] = {}
        self.artifact: tuple[str, str, int] | None = None
        self._last_step: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        stored = {k: encode_param(k, v) for k, v in (params or {}).items()}
        self.params.update({k: v for k, (v, _) in stored.items()})
        context = capture(seeds=dict(seeds) if seeds else None)
        self._t0 = time.perf_counter()
        self.model_id, self.id = self.store.run(
            lambda s: self._start(s, framework, model_type, description, stored, dataset, context, tags)
        )
        writer = self.store.writer
        self._writer = writer
        self._append = writer.queue.append
        self._queue = writer.queue
        self._max_pending = writer.max_pending

    def __repr__(self) -> str:
        return f"Training(id={self.id}, model={self.model_name!r}, status={self.status!r})"

    # ------------------------------------------------------------------ start
    def _start(
        self,
        s: Session,
        framework: str | None,
        model_type: str | None,
        description: str | None,
        params: dict[str, tuple[Any, str]],
        dataset: Dataset | None,
        context: dict[str, Any],
        tags: Mapping[str, str] | None,
    ) -> tuple[int, int]:
        model = get_or_create_model(
            s, self.store, self.model_name, framework=framework, model_type=model_type, description=description
        )
        if tags:
            set_tags(s, model.id, tags)
        dataset_id = get_or_create_dataset(s, dataset) if dataset is not None else None
        git = context.get("git") or {}
        training = schema.Training(
            uuid=self.uuid,
            model_id=model.id,
            status="running",
            started_at=schema.utcnow(),
            dataset_id=dataset_id,
            run_by=context["user"],
            host=context["host"],
            git_commit=git.get("commit"),
            context=to_jsonable(context),
        )
        s.add(training)
        s.flush()
        if params:
            s.execute(
                insert(schema.Param),
                [{"training_id": training.id, "key": k, "value": v, "display": d} for k, (v, d) in params.items()],
            )
        return model.id, training.id

    # ---------------------------------------------------------------- logging
    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Queue one metric point; no I/O happens on this thread.

        ``step`` defaults to one past the last step logged for this key (0 for the first).
        """
        if type(key) is not str or not key or len(key) > MAX_KEY:
            check_metric_key(key)
        if self.status != "running":
            raise ValidationError(f"training {self.id} is {self.status}; cannot log metric {key!r}", value=key)
        if type(value) is not float:
            value = as_metric_value(value, key)
        if step is None:
            step = self._last_step.get(key, -1) + 1
        elif type(step) is not int or step < 0:
            step = check_step(step)
        self._last_step[key] = step
        self._append((self.id, key, step, value, _now()))
        if len(self._queue) > self._max_pending:
            self._writer.wait_for_room()

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if not isinstance(metrics, Mapping):
            raise ValidationError(f"log_metrics takes a mapping of key to number, got {metrics!r}", value=metrics)
        checked = [(check_metric_key(k), as_metric_value(v, k)) for k, v in metrics.items()]
        for key, value in checked:
            self.log_metric(key, value, step)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters; a key already recorded with another value is an error, not an overwrite."""
        if not isinstance(params, Mapping):
            raise ValidationError(f"log_params takes a mapping, got {params!r}", value=params)
        self._check_running("log params")
        encoded = {k: encode_param(k, v) for k, v in params.items()}
        new = {}
        with self._lock:
            for key, (stored, shown) in encoded.items():
                if key in self.params:
                    if _same(self.params[key], stored):
                        continue
                    raise ValidationError(
                        f"param {key!r} is already {self.params[key]!r} in training {self.id}; "
                        f"refusing to overwrite it with {stored!r}",
                        value=key,
                    )
                new[key] = (stored, shown)
            self.params.update({k: v for k, (v, _) in new.items()})
        if new:
            rows = [{"training_id": self.id, "key": k, "value": v, "display": d} for k, (v, d) in new.items()]
            self._writer.submit(lambda conn: upsert(conn, schema.Param.__table__, rows, keys=["training_id", "key"]))

    def log_artifact(self, path: str | os.PathLike[str]) -> None:
        """Record the trained model's file (or directory) with its sha256 and size."""
        self._check_running("log an artifact")
        if not os.path.exists(path):
            raise ValidationError(f"artifact path does not exist: {os.fspath(path)!r}", value=os.fspath(path))
        digest, size = path_digest(path)
        self.artifact = (os.path.abspath(os.fspath(path)), digest, size)

    def set_dataset(self, dataset: Dataset) -> None:
        """Attach the dataset once it is known (adapters learn it only at ``fit``)."""
        if not isinstance(dataset, Dataset):
            raise ValidationError(f"dataset must be a modeltrail.Dataset, got {type(dataset).__name__}", value=dataset)
        self._check_running("set the dataset")

        def attach(conn: Connection) -> None:
            with Session(conn) as s:
                dataset_id = get_or_create_dataset(s, dataset)
                s.execute(update(schema.Training).where(schema.Training.id == self.id).values(dataset_id=dataset_id))
                s.flush()

        self._writer.submit(attach)

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything logged so far is in the database."""
        self._writer.flush(timeout)

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> Training:
        self._token = _active.set(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        token = getattr(self, "_token", None)
        if token is not None:
            with contextlib.suppress(ValueError):  # exited in another context than entered
                _active.reset(token)
            self._token = None
        if self.status != "running":
            return
        if exc is None:
            self.finish()
        else:
            self.finish("failed", error=f"{exc_type.__name__ if exc_type else 'Error'}: {exc}")

    def finish(self, status: str = "finished", *, error: str | None = None) -> VersionRecord | None:
        """End the training. A finished training becomes the model's next version; a failed one does not."""
        if status not in STATUSES:
            raise ValidationError(f"status must be one of {STATUSES}, got {status!r}", value=status)
        with self._lock:
            if self.status != "running":
                return self.version
            self.status = "finishing"
        duration = time.perf_counter() - self._t0
        try:
            self._writer.flush()
            self.version = self.store.run(lambda s: self._finish(s, status, error, duration))
        except BaseException:
            self.status = "running"  # nothing recorded it as ended; the caller may retry
            raise
        self.status = status
        self.error = error
        training_id = self.id
        self._writer.submit(lambda conn: self._writer.forget(training_id))
        return self.version

    def _finish(self, s: Session, status: str, error: str | None, duration: float) -> VersionRecord | None:
        artifact_path, sha, size = self.artifact or (None, None, None)
        model = None
        if status == "finished":
            # Lock the model row first, before any plain read, so the version number read below
            # is the latest committed one on every backend (see DESIGN: version allocation).
            model = s.execute(
                select(schema.Model).where(schema.Model.id == self.model_id).with_for_update()
            ).scalar_one()
        s.execute(
            update(schema.Training)
            .where(schema.Training.id == self.id)
            .values(
                status=status, ended_at=schema.utcnow(), duration_s=duration, error=error,
                artifact_path=artifact_path, artifact_sha256=sha, artifact_size=size,
            )
        )  # fmt: skip
        if model is None:
            return None
        parent = s.execute(
            select(schema.Version)
            .where(schema.Version.model_id == self.model_id)
            .order_by(schema.Version.number.desc())
            .limit(1)
            .with_for_update()
        ).scalar_one_or_none()
        own = _params_of(s, self.id)
        diff = param_diff(_params_of(s, parent.training_id) if parent else {}, own)
        version = schema.Version(
            model_id=self.model_id,
            number=(parent.number if parent else 0) + 1,
            training_id=self.id,
            parent_id=parent.id if parent else None,
            artifact_path=artifact_path,
            param_diff=diff,
            created_at=schema.utcnow(),
        )
        s.add(version)
        s.flush()
        record_event(
            s, self.store, action="version.create", entity="version", entity_id=version.id,
            after={"model": model.name, "number": version.number, "training_id": self.id, "param_diff": diff},
        )  # fmt: skip
        return VersionRecord(
            id=version.id,
            model=model.name,
            number=version.number,
            training_id=self.id,
            parent_number=parent.number if parent else None,
            artifact_path=artifact_path,
            param_diff=from_jsonable(diff),
            created_at=version.created_at,
        )

    def _check_running(self, what: str) -> None:
        if self.status != "running":
            raise ValidationError(f"training {self.id} is {self.status}; cannot {what}", value=self.status)


# ----------------------------------------------------------------- helpers
def get_or_create_model(
    s: Session,
    store: Store,
    name: str,
    *,
    framework: str | None = None,
    model_type: str | None = None,
    description: str | None = None,
) -> schema.Model:
    """The model row named ``name``, made if missing (a race is retried by :meth:`Store.run`)."""
    model = s.execute(select(schema.Model).where(schema.Model.name == name)).scalar_one_or_none()
    if model is None:
        model = schema.Model(
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
        s.execute(update(schema.Model).where(schema.Model.id == model.id).values(**fill))
    return model


def set_tags(s: Session, model_id: int, tags: Mapping[str, str]) -> None:
    rows = [{"model_id": model_id, "key": str(k), "value": str(v)} for k, v in tags.items()]
    upsert(s, schema.ModelTag.__table__, rows, keys=["model_id", "key"], update=["value"])


def get_or_create_dataset(s: Session, dataset: Dataset) -> int:
    table = schema.Dataset.__table__
    row = {
        "name": dataset.name,
        "digest": dataset.digest,
        "n_rows": dataset.n_rows,
        "n_features": dataset.n_features,
        "shape": list(dataset.shape) if dataset.shape else None,
        "features": list(dataset.features) if dataset.features else None,
        "source": dataset.source,
        "created_at": schema.utcnow(),
    }
    upsert(s, table, [row], keys=["digest", "name"])
    return s.execute(
        select(table.c.id).where(table.c.digest == dataset.digest, table.c.name == dataset.name)
    ).scalar_one()


def _params_of(s: Session, training_id: int) -> dict[str, Any]:
    rows = s.execute(select(schema.Param.key, schema.Param.value).where(schema.Param.training_id == training_id))
    return {key: value for key, value in rows}


def _same(a: Any, b: Any) -> bool:
    return param_diff({"k": a}, {"k": b})["changed"] == {}


__all__ = ["Training", "active_training", "check_metric_key", "check_model_name", "check_step"]
