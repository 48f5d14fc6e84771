"""The core logger: one :class:`Training` is one fit of one model.

Starting and finishing touch the database directly when it is up (they are rare
and the caller wants the training id and version number back); everything logged
in between goes through the store's background writer (``_writer.writer_for``) so
that ``log_metric`` costs microseconds. When the database is away, start and finish queue behind
everything else and go to the durable spool (see ``writer`` and ``spool``).
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import os
import threading
import time
import uuid as uuid_mod
import warnings
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from . import _system
from ._context import capture
from ._dataset import Dataset, dataset_row
from ._errors import StorageError, StorageUnavailableError, ValidationError, user_stacklevel
from ._records import PendingVersion, VersionRecord
from ._secrets import REDACTED, is_secret_key, mask_url_passwords, redact
from ._values import (
    MAX_JSON_BYTES,
    MAX_STEP,
    SHORT_MAX,
    TEXT_MAX_BYTES,
    USER_MAX,
    as_metric_value,
    check_artifact_name,
    check_chars,
    check_distinct_keys,
    check_key,
    check_label,
    check_metric_key,
    check_model_name,
    check_param_key,
    check_params_weight,
    check_step,
    check_string,
    check_tags,
    check_text,
    clean_json,
    clean_text,
    encode_param,
    encode_params,
    json_size,
    param_diff,
    to_jsonable,
)

if TYPE_CHECKING:
    from ._store import Store


class TrackerLike(Protocol):
    """What a training needs of its tracker: the store it writes to."""

    @property
    def store(self) -> Store: ...


_now = time.time

#: The training whose ``with`` block is running in this context: adapters and autolog
#: log into it instead of starting their own (a decorated function that calls ``fit``).
_active: contextvars.ContextVar[Training | None] = contextvars.ContextVar("modeltrail_active", default=None)


def active_training() -> Training | None:
    """The training of the innermost ``with tracker.training(...)`` block of this thread/task, if any."""
    return _active.get()


STATUSES = ("finished", "failed", "pruned")  # pruned: stopped early on purpose (a tuner), no version
#: The artifact that is a version's model.
MODEL = "model"
#: How a model artifact can be loaded back (``Tracker.load_model``).
FLAVORS = ("sklearn", "skops", "keras", "lightning", "pytorch", "xgboost", "lightgbm", "file")


class Training:
    """A running training: log params, metrics and artifacts; leaving the ``with`` block finishes it.

    ``id`` is the database id, or None while the database is unreachable (the
    training is then identified by ``uuid`` and written when the database is back).
    """

    def __init__(
        self,
        tracker: TrackerLike,
        model: str,
        *,
        framework: str | None = None,
        model_type: str | None = None,
        description: str | None = None,
        params: Mapping[str, Any] | None = None,
        dataset: Dataset | None = None,
        seeds: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        system_metrics: bool | float | None = None,
    ) -> None:
        self.tracker: Any = tracker  # the Tracker; typed loosely because _training sits below _tracker
        self.model_name = check_model_name(model)
        if dataset is not None and not isinstance(dataset, Dataset):
            raise ValidationError(f"dataset must be a modeltrail.Dataset, got {type(dataset).__name__}", value=dataset)
        for label, value in (("framework", framework), ("model_type", model_type)):
            if value is not None:
                check_label(value, label)
        # Everything the database could refuse is refused here, before the writer or the spool holds it.
        description = check_text("description", description)
        if description is not None:
            description = check_text("description", mask_url_passwords(description))
        encoded = encode_params(params or {})
        self._params_bytes = sum(size for _, _, size in encoded.values())
        check_params_weight(self._params_bytes, encoded)
        stored = {k: (v, shown) for k, (v, shown, _) in encoded.items()}
        # Tags are shown everywhere: a secret-named tag or a URL's password is masked (then checked again,
        # as the mask may lengthen a value).
        checked_tags = check_tags(
            {k: REDACTED if is_secret_key(k) else mask_url_passwords(v) for k, v in check_tags(tags).items()}
        )
        context = _start_context(seeds)
        system_interval = _system.plan(system_metrics)  # None: off (MODELTRAIL_SYSTEM_METRICS decides by default)
        self._sampler: _system.Sampler | None = None
        self.store: Store = tracker.store
        self.uuid = str(uuid_mod.uuid4())
        self.id: int | None = None
        self.status = "running"
        #: The version a finished training made; a :class:`PendingVersion` while its end waits in the spool.
        self.version: VersionRecord | PendingVersion | None = None
        self.error: str | None = None
        self.params: dict[str, Any] = {k: v for k, (v, _) in stored.items()}
        self.artifact: dict[str, Any] | None = None  # the model's path (its digest is the writer's work)
        self._artifacts: dict[str, str] = {}
        self._extra_context: dict[str, Any] = {}
        self._context_sizes = {"": json_size(context)}  # "" is the captured part; the rest by add_context key
        self._stages = 0
        self._open_stages: list[Stage] = []
        #: Ended as abandoned at exit if still running; an adapter whose watchdog names the cause turns it off.
        self.abandon_at_exit = True
        self.failed_stage: str | None = None
        self._last_step: dict[str, int] = {}
        self._lock = threading.Lock()
        from ._writer import writer_for  # here: ``active_training`` must not import SQLAlchemy

        writer = writer_for(self.store)
        self._writer = writer
        self._append = writer.queue.append
        self._queue = writer.queue
        self._wake_at = min(writer.batch_size, writer.max_pending)
        self._started_ts = _now()
        self._t0 = time.perf_counter()
        op = {
            "uuid": self.uuid,
            "model": self.model_name,
            "framework": framework,
            "model_type": model_type,
            "description": description,
            "tags": checked_tags,
            "params": stored,
            "dataset": dataset_row(dataset) if dataset is not None else None,
            "context": context,
            "started_ts": self._started_ts,
        }
        self.id = self._now_or_spooled("start", op)
        if self.id is not None:
            writer.register(self.uuid, self.id)
        _watch_unfinished(self)
        self._sampler = _system.start(self.log_metric, system_interval)

    def __repr__(self) -> str:
        return f"Training(id={self.id}, model={self.model_name!r}, status={self.status!r})"

    def _now_or_spooled(self, kind: str, op: dict[str, Any]) -> Any:
        """Apply ``op`` on this thread when the database is up; otherwise queue it behind the spool."""
        writer = self._writer
        if not writer.offline:
            try:
                return writer._apply(kind, op)
            except StorageUnavailableError:
                pass  # the writer spools it below and warns once
            except StorageError as e:
                if not writer.store.is_busy(e):
                    raise
                # Deadlocked after every retry (a busy Galera cluster): the writer retries it, then spools it.
        queued = writer.submit(kind, op)
        writer.flush()
        return queued.result  # what the writer's own attempt made; None when it went to the spool

    # ---------------------------------------------------------------- logging
    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Queue one metric point; no I/O happens on this thread.

        ``step`` defaults to one past the last step logged for this key (0 for the first).
        """
        if type(key) is not str or key not in self._last_step:
            check_metric_key(key)  # once per key: later calls only pay for the dict lookup
        if self.status != "running":
            raise ValidationError(f"training {self.id} is {self.status}; cannot log metric {key!r}", value=key)
        if type(value) is not float:
            value = as_metric_value(value, key)
        if step is None:
            step = self._last_step.get(key, -1) + 1
        elif type(step) is not int or not 0 <= step <= MAX_STEP:
            step = check_step(step)
        self._last_step[key] = step
        self._append((self.uuid, key, step, value, _now()))
        if len(self._queue) > self._wake_at:
            self._writer.nudge()

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if not isinstance(metrics, Mapping):
            raise ValidationError(f"log_metrics takes a mapping of key to number, got {metrics!r}", value=metrics)
        known = self._last_step  # keys checked before are not checked again
        checked = [
            (
                k if type(k) is str and k in known else check_metric_key(k),
                v if type(v) is float else as_metric_value(v, k),
            )
            for k, v in metrics.items()
        ]
        for key, value in checked:
            self.log_metric(key, value, step)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters; a key already recorded with another value is an error, not an overwrite."""
        if not isinstance(params, Mapping):
            raise ValidationError(f"log_params takes a mapping, got {params!r}", value=params)
        self._check_running("log params")
        encoded = encode_params(params)
        new = {}
        added = 0
        with self._lock:
            for key, (stored, shown, size) in encoded.items():
                if key in self.params:
                    if _same(self.params[key], stored):
                        continue
                    raise ValidationError(
                        f"param {key!r} is already {self.params[key]!r} in training {self.id}; "
                        f"refusing to overwrite it with {stored!r}",
                        value=key,
                    )
                new[key] = (stored, shown)
                added += size
            check_params_weight(self._params_bytes + added, new)
            self._params_bytes += added
            self.params.update({k: v for k, (v, _) in new.items()})
        if new:
            self._writer.submit("params", {"uuid": self.uuid, "params": new})

    def log_artifact(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        role: str | None = None,
        flavor: str | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a file or a whole directory under ``name``; the one named ``model`` is the version's model.

        Costs microseconds: the sha256, the size and the copy into the artifact store happen on the
        writer thread, so keep the file unchanged until the training ends (its end waits for them).
        Without ``name`` the first artifact is ``model`` and later ones take their file's name.
        ``flavor`` says how :meth:`Tracker.load_model` loads it (``sklearn``, ``skops``, ``keras``,
        ``lightning``, ``pytorch``, ``file``); ``info`` is what loading needs beyond it (a Lightning
        module's ``{"class": "package.module.Class"}``). ``role`` is free: ``plot``, ``report``...
        """
        self._check_running("log an artifact")
        given = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else path
        check_string(given, "artifact path", max_bytes=TEXT_MAX_BYTES)
        if not os.path.exists(given):
            raise ValidationError(f"artifact path does not exist: {given!r}", value=given)
        full = check_string(os.path.abspath(given), "artifact path", max_bytes=TEXT_MAX_BYTES)
        store = getattr(self.tracker, "artifact_store", None)  # resolved once per Tracker; a bad URL raises here
        with self._lock:
            if name is None:
                name = MODEL if MODEL not in self._artifacts else os.path.basename(full.rstrip(os.sep)) or full
            name = check_artifact_name(name)
            role = check_label(role, "artifact role") if role is not None else None
            if flavor is not None and flavor not in FLAVORS:
                raise ValidationError(f"flavor must be one of {', '.join(FLAVORS)}, got {flavor!r}", value=flavor)
            if info is not None and not isinstance(info, Mapping):
                raise ValidationError(f"info must be a mapping, got {info!r}", value=info)
            extra = _context_value("info", dict(info)) if info is not None else None
            self._artifacts[name] = full
        if name == MODEL:
            self.artifact = {"path": full}
        self._writer.submit(
            "artifact",
            {
                "uuid": self.uuid, "name": name, "path": full, "role": role, "flavor": flavor, "info": extra,
                "logged_ts": _now(), "store": store,
            },
        )  # fmt: skip

    def add_context(self, info: Mapping[str, Any]) -> None:
        """Facts about the run that are not hyperparameters (checkpoint paths, device names...).

        They are stored in the training's context when it ends, so they never show up as a
        parameter change between versions. Later values for a key replace earlier ones.
        """
        if not isinstance(info, Mapping):
            raise ValidationError(f"add_context takes a mapping, got {info!r}", value=info)
        self._check_running("add context")
        check_distinct_keys(info, "context")
        encoded = {check_key(str(k), "context"): _context_value(str(k), v) for k, v in info.items()}
        sizes = {k: json_size(k) + json_size(v) for k, v in encoded.items()}
        with self._lock:
            total = sum({**self._context_sizes, **sizes}.values())
            if total > MAX_JSON_BYTES:
                raise ValidationError(
                    f"context {', '.join(encoded)[:80]!r} would bring the training's context to {total:,} bytes "
                    f"as JSON, the limit is {MAX_JSON_BYTES:,}",
                    value=next(iter(encoded), None),
                )
            self._context_sizes.update(sizes)
            self._extra_context.update(encoded)

    def set_dataset(self, dataset: Dataset) -> None:
        """Attach the dataset once it is known (adapters learn it only at ``fit``)."""
        if not isinstance(dataset, Dataset):
            raise ValidationError(f"dataset must be a modeltrail.Dataset, got {type(dataset).__name__}", value=dataset)
        self._check_running("set the dataset")
        self._writer.submit("dataset", {"uuid": self.uuid, "dataset": dataset_row(dataset)})

    def stage(self, name: str) -> Stage:
        """``with run.stage("preprocess"):`` times one pipeline stage and records how it ended.

        Params and metrics logged through the stage are the training's, keyed ``<stage>.<key>``.
        A stage that raises is recorded failed, and the training's error names it.
        """
        if not isinstance(name, str) or not name.strip() or len(name) > 64 or name != name.strip():
            raise ValidationError(
                f"stage name must be 1 to 64 characters without outer spaces, got {name!r}", value=name
            )
        check_chars(name, "stage name")
        self._check_running(f"start stage {name!r}")
        with self._lock:
            position = self._stages
            self._stages += 1
        return Stage(self, name, position)

    def begin_stage(self, name: str) -> Stage:
        """Start stage ``name`` now and return it; :meth:`Stage.end` ends it.

        For code that cannot hold a ``with`` block open across the stage: framework callbacks
        begin a stage in one hook and end it in another.
        """
        return self.stage(name).begin()

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything logged so far is in the database (or the durable spool)."""
        self._writer.flush(timeout)

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> Training:
        self._token: contextvars.Token[Training | None] | None = _active.set(self)
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
            return
        self.finish("failed", error=f"{exc_type.__name__ if exc_type else 'Error'}: {exc}")

    def finish(
        self, status: str = "finished", *, error: str | None = None, make_version: bool = True
    ) -> VersionRecord | PendingVersion | None:
        """End the training. A finished training becomes the model's next version; a failed or pruned one does not.

        ``make_version=False`` ends a finished training without a version: one of many candidates (a tuner's
        trial that is not the best) is kept and searchable without crowding the registry.
        With the database away, the end is spooled and the version is made when it is
        back; ``version`` stays None here.
        """
        if status not in STATUSES:
            raise ValidationError(f"status must be one of {STATUSES}, got {status!r}", value=status)
        if self.status == "running":
            # Stages begun with begin_stage and never ended (a callback that never came) end with the training.
            for stage in list(self._open_stages):
                stage.end(None if status == "finished" else error or "the training ended before this stage did")
        if status == "failed" and self.failed_stage is not None:
            # Whoever ends the training (a ``with`` block, an adapter's hook), its error names the failed stage.
            prefix = f"stage {self.failed_stage!r} failed"
            error = prefix if not error else error if error.startswith(prefix) else f"{prefix}: {error}"
        if error is not None:
            error = mask_url_passwords(
                clean_text(str(error))
            )  # an exception's text: stored as it can be, never refused
        if self._sampler is not None:
            self._sampler.stop()  # its last sample is logged while the training still runs
        with self._lock:
            if self.status != "running":
                return self.version
            self.status = "finishing"
        op = {
            "uuid": self.uuid,
            "status": status,
            "error": error,
            "duration_s": time.perf_counter() - self._t0,
            "ended_ts": _now(),
            "artifact": None,  # the model artifact's row, written before this, gives the training its fields
            "context": dict(self._extra_context),
        }
        if not make_version:
            op["version"] = False
        try:
            self._writer.flush()
            made = self._now_or_spooled("finish", op)
        except BaseException:
            self.status = "running"  # nothing recorded it as ended; the caller may retry
            raise
        pending = made is None and status == "finished" and make_version
        self.version = PendingVersion(self.model_name, self.uuid) if pending else made
        self.status = status
        self.error = error
        with _unfinished_lock:
            _unfinished.pop(self.uuid, None)
        self._writer.submit("forget", {"uuid": self.uuid})
        return self.version

    def _check_running(self, what: str) -> None:
        if self.status != "running":
            raise ValidationError(f"training {self.id} is {self.status}; cannot {what}", value=self.status)


# ------------------------------------------- trainings nobody finished by exit
_unfinished: dict[str, Training] = {}
_unfinished_lock = threading.Lock()


def _watch_unfinished(run: Training) -> None:
    """Keep ``run`` until it ends, and (re)register the exit hook so it runs before every writer's close.

    ``atexit`` runs the last registered first; registering again after each new writer keeps this hook
    ahead of all of them, so an abandoned training's end is still written (or spooled).
    """
    with _unfinished_lock:
        _unfinished[run.uuid] = run
    atexit.unregister(_end_unfinished)
    atexit.register(_end_unfinished)


def _end_unfinished() -> None:
    """At exit, a training never finished (made without ``with``, ``finish()`` never called) ends as abandoned."""
    with _unfinished_lock:
        runs = [run for run in _unfinished.values() if run.status == "running" and run.abandon_at_exit]
        _unfinished.clear()
    for run in runs:
        warnings.warn(
            f"modeltrail: training {run.id if run.id is not None else run.uuid} of {run.model_name!r} was still "
            "running when the process exited (it was never finished: use `with tracker.training(...)` or call "
            "`finish()`); it is recorded as failed, abandoned",
            RuntimeWarning,
            stacklevel=user_stacklevel(),
        )
        with contextlib.suppress(Exception):
            run.finish("failed", error="abandoned: the process exited while the training was still running")


class Stage:
    """One stage of a :class:`Training`; see :meth:`Training.stage` and :meth:`Training.begin_stage`."""

    def __init__(self, training: Training, name: str, position: int) -> None:
        self.training = training
        self.name = name
        self.position = position
        self.params: dict[str, Any] = {}
        self.status = "pending"
        self.duration_s: float | None = None
        self.error: str | None = None

    def __repr__(self) -> str:
        return f"Stage({self.name!r}, status={self.status!r})"

    def __enter__(self) -> Stage:
        return self.begin()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.end(exc)

    def begin(self) -> Stage:
        """Start the clock (once)."""
        if self.status == "pending":
            self._started_ts = _now()
            self._t0 = time.perf_counter()
            self.status = "running"
            with self.training._lock:
                self.training._open_stages.append(self)
        return self

    def end(self, error: BaseException | str | None = None) -> None:
        """Record the stage: finished, or failed with ``error`` (an exception or its text). Later calls do nothing.

        The training's error then names this stage as the one that failed (the first failure wins).
        """
        if self.status != "running":
            return
        with self.training._lock:
            if self in self.training._open_stages:
                self.training._open_stages.remove(self)
        self.duration_s = time.perf_counter() - self._t0
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        if error is not None:
            error = mask_url_passwords(clean_text(error))
        self.status = "finished" if error is None else "failed"
        self.error = error
        if error is not None and self.training.failed_stage is None:
            self.training.failed_stage = self.name
        stage = {
            "name": self.name,
            "position": self.position,
            "status": self.status,
            "started_ts": self._started_ts,
            "ended_ts": _now(),
            "duration_s": self.duration_s,
            "error": error,
            "params": {k: encode_param(k, v)[0] for k, v in self.params.items()},
        }
        self.training._writer.submit("stage", {"uuid": self.training.uuid, "stage": stage})
        if self.training.status == "running":
            self.training.log_metric(f"{self.name}.duration_s", self.duration_s, step=self.position)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not isinstance(params, Mapping):
            raise ValidationError(f"log_params takes a mapping, got {params!r}", value=params)
        for key in params:
            check_param_key(key)  # before the stage's prefix makes 1 and "1" the same key
        self.training.log_params({f"{self.name}.{k}": v for k, v in params.items()})
        self.params.update(params)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.training.log_metric(f"{self.name}.{key}", value, step)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self.training.log_metrics({f"{self.name}.{k}": v for k, v in metrics.items()}, step)


def _start_context(seeds: Mapping[str, Any] | None) -> dict[str, Any]:
    """The environment as captured (made storable: a command line may hold any bytes) and the caller's seeds."""
    context: dict[str, Any] = to_jsonable(clean_json(capture()))
    command, keep = context.get("command") or [], len(context.get("command") or [])
    while keep > 1 and json_size(command[:keep]) > TEXT_MAX_BYTES:  # a huge command line is cut, not refused
        keep //= 2
    if keep < len(command):
        context["command"] = [*command[:keep], f"... ({len(command) - keep} more arguments cut)"]
    for field, limit in (("user", USER_MAX), ("host", SHORT_MAX)):  # also kept in trainings.run_by / .host
        if isinstance(context.get(field), str):
            context[field] = context[field][:limit]
    if seeds:
        if not isinstance(seeds, Mapping):
            raise ValidationError(f"seeds must be a mapping, got {seeds!r}", value=seeds)
        context["seeds"] = _context_value("seeds", dict(seeds))
    size = json_size(context)
    if size > MAX_JSON_BYTES:
        raise ValidationError(
            f"the training's context (environment and seeds) is {size:,} bytes as JSON, "
            f"the limit is {MAX_JSON_BYTES:,}",
            value=seeds,
        )
    return context


def _context_value(key: str, value: Any) -> Any:
    """A context value as stored: secrets masked by the same rule as params (a DSN, ``db_password``)."""
    if is_secret_key(key):
        return REDACTED
    try:
        return to_jsonable(redact(value))
    except ValidationError as e:
        raise ValidationError(f"context {key[:40]!r}: {e}", value=e.value) from e


def _same(a: Any, b: Any) -> bool:
    return param_diff({"k": a}, {"k": b})["changed"] == {}


__all__ = ["Stage", "Training", "active_training"]
