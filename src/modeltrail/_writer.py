"""The background writer: the caller enqueues, one thread per store writes in batches.

Why it looks like this:

* ``log_metric`` must cost microseconds, so the caller only appends a tuple to a
  ``deque`` (atomic under the GIL, no lock, no wake-up call). The writer wakes on a
  short timer, drains everything queued and writes it as multi-row INSERTs through
  the driver's ``executemany`` (PyMySQL turns that into one multi-row statement).
* Per-metric summaries (last/min/max with their steps) are merged in memory and
  upserted once per batch, so a comparison never scans the history.
* Every batch carries a ``batch_id`` recorded in the same transaction as its rows,
  so writing it twice (a lost commit acknowledgement, a replay) is harmless.
* When the database is unreachable the writer goes *offline*: everything, in order,
  goes to a durable local :class:`~modeltrail._spool.Spool`, which is replayed as soon
  as the database answers again. While the spool holds anything, new work queues
  behind it, so per-training order is never broken.
* The in-memory queue has a bound; beyond it the caller waits for the writer.
* This module owns the writers: :func:`writer_for` starts one per store and process and
  hooks its shutdown onto the store's close; the store itself knows nothing of writers.
  Points and summaries are written by :mod:`modeltrail._operations.metrics`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import uuid
import warnings
from collections import deque
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from ._errors import ModeltrailError, StorageError, StorageUnavailableError
from ._operations import metrics
from ._operations import trainings as operations
from ._operations.metrics import PointRow, Summary
from ._spool import Spool, orphans
from ._values import FINITE, encode_float

if TYPE_CHECKING:
    from ._store import Store

log = logging.getLogger("modeltrail._writer")

#: One queued metric point: (training uuid, key, step, value, unix_time).
MetricRow = tuple[str, str, int, float, float]


class Op:
    """A queued operation other than a metric point: ``kind`` and a JSON-able payload."""

    __slots__ = ("done", "error", "kind", "payload", "result")

    def __init__(self, kind: str, payload: dict[str, Any] | None = None) -> None:
        self.kind = kind
        self.payload = payload or {}
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.result: Any = None


class Writer:
    """One background thread that owns all writes of logged data for one :class:`Store`."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float = 1.0,  # a slow trickle is written once a second; a full batch wakes it at once
        batch_size: int = 20_000,
        max_pending: int = 1_000_000,
        retry_interval: float = 2.0,
    ) -> None:
        self.store = store
        self.queue: deque[MetricRow | Op] = deque()
        self.interval = interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.retry_interval = retry_interval
        self.written = 0
        #: Rows the database refused for a reason other than being unreachable; kept for inspection.
        self.unwritten: list[MetricRow] = []
        self.spool: Spool | None = None
        self._ids: dict[str, int] = {}
        self._key_ids: dict[str, int] = {}
        self._summaries: dict[tuple[int, int], Summary] = {}
        self._wake = threading.Event()
        self._stop = False
        self._warned_offline = False
        self._error: Exception | None = None
        self._next_attempt = 0.0
        if store.unavailable is not None and not store.schema_ready:
            # The store opened while the server was away: spool from the start until it answers.
            self._go_offline(store.unavailable)
        self._thread = threading.Thread(target=self._run, name="modeltrail-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # ------------------------------------------------------------- caller side
    @property
    def offline(self) -> bool:
        """True while anything waits in the spool: new work must queue behind it."""
        return self.spool is not None and len(self.spool) > 0

    def register(self, uuid_: str, training_id: int) -> None:
        self._ids[uuid_] = training_id

    def nudge(self) -> None:
        """A full batch is waiting: wake the writer now; block while the queue is over its bound."""
        if not self._wake.is_set():  # set() takes a lock; reading the flag does not
            self._wake.set()
        while len(self.queue) > self.max_pending and self._thread.is_alive():
            time.sleep(0.005)

    def submit(self, kind: str, payload: dict[str, Any]) -> Op:
        op = Op(kind, payload)
        self.queue.append(op)
        return op

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything queued before this call is in the database or the durable spool."""
        if not self._thread.is_alive():
            if self.queue:
                raise StorageError(f"the modeltrail writer for {self.store.display_uri} has stopped")
            return
        op = self.submit("flush", {})
        self._wake.set()
        if not op.done.wait(timeout):
            raise StorageError(
                f"timed out after {timeout}s writing to {self.store.display_uri}; data stays queued", value=timeout
            )
        if op.error is not None:
            raise op.error

    def sync(self, timeout: float | None = None) -> int:
        """Replay the spool now (and orphaned spools of ended processes); returns entries still waiting."""
        op = self.submit("sync", {})
        self._wake.set()
        if not op.done.wait(timeout):
            raise StorageError(f"timed out after {timeout}s replaying the spool", value=timeout)
        if op.error is not None:
            raise op.error
        return int(op.result or 0)

    def close(self) -> None:
        if self._stop:
            return
        with contextlib.suppress(ModeltrailError):
            self.flush()
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)
        if self.spool is not None:
            left = len(self.spool)
            if left:
                warnings.warn(
                    f"modeltrail: {left} entries wait in the spool {self.spool.path} for "
                    f"{self.store.display_uri}; they are replayed by the next modeltrail process or `modeltrail sync`",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self.spool.close()
            self.spool = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    # ------------------------------------------------------------- writer side
    def _run(self) -> None:
        with contextlib.suppress(Exception):
            self._adopt_orphans()
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self.offline and time.monotonic() >= self._next_attempt:
                self._replay()
            while self.queue:
                try:
                    self._drain_once()
                except Exception as e:  # the thread must outlive any one bad batch
                    log.exception("modeltrail: writer error")
                    self._error = e
            if self._stop and not self.queue:
                return

    def _drain_once(self) -> None:
        q = self.queue
        op: Op | None = None
        # Pop in bulk (callers only append on the right). An Op ends the batch: it and
        # whatever was popped behind it go back to the front, in order.
        popleft = q.popleft
        rows: list[Any] = [popleft() for _ in range(min(len(q), self.batch_size))]
        if rows and (type(rows[0]) is not tuple or len(set(map(type, rows))) > 1):
            at = next(i for i, r in enumerate(rows) if type(r) is not tuple)
            op = rows[at]
            q.extendleft(reversed(rows[at:]))
            del rows[at:]
        if rows:
            try:
                self._deliver("points", {"batch_id": str(uuid.uuid4()), "rows": rows})
            except Exception as e:
                self.unwritten.extend(rows)  # kept and reported at the next flush, never silently dropped
                self._error = e
                log.error("modeltrail: a batch of %d points could not be written: %s", len(rows), e)
        if op is None:
            return
        q.popleft()
        try:
            if op.kind == "flush":
                op.error, self._error = self._error, None
            elif op.kind == "sync":
                self._adopt_orphans()
                self._replay()
                op.result = len(self.spool) if self.spool is not None else 0
            elif op.kind == "forget":
                self._forget(op.payload["uuid"])
            else:
                op.result = self._deliver(op.kind, op.payload)
        except Exception as e:
            op.error = e
        finally:
            op.done.set()

    def _deliver(self, kind: str, payload: dict[str, Any]) -> Any:
        """Write to the database, or to the spool while it is unreachable (or the spool is not empty)."""
        if not self.offline:
            try:
                return self._apply(kind, payload)
            except StorageUnavailableError as e:
                self._go_offline(e)
        if self.spool is None:
            self.spool = Spool.create(self.store.uri, self.store.spool_dir)
        self.spool.append(kind, payload)  # JSON: tuples come back as lists, which unpack alike
        return None

    def _go_offline(self, error: BaseException) -> None:
        self._summaries.clear()  # the outcome of the failed write is unknown: reload from the database later
        self._next_attempt = time.monotonic() + self.retry_interval
        if self.spool is None:
            self.spool = Spool.create(self.store.uri, self.store.spool_dir)
        if not self._warned_offline:
            self._warned_offline = True
            warnings.warn(
                f"modeltrail: the database is unreachable ({error}); training continues and everything logged "
                f"is kept in the local spool {self.spool.path} until it can be written",
                RuntimeWarning,
                stacklevel=2,
            )

    def _replay(self) -> None:
        """Drain the spool oldest-first; stop at the first entry the database cannot take yet."""
        if self.spool is None:
            return
        self._next_attempt = time.monotonic() + self.retry_interval
        if not self._replay_spool(self.spool):
            return
        log.info("modeltrail: spool drained into %s", self.store.display_uri)

    def _replay_spool(self, spool: Spool) -> bool:
        try:
            self.store.ensure_schema()
            while True:
                batch = list(spool.entries(100))
                if not batch:
                    return True
                for seq, kind, payload in batch:
                    self._apply(kind, payload)
                    spool.ack(seq)
        except StorageUnavailableError:
            return False
        except ModeltrailError as e:
            self._error = e
            log.error("modeltrail: cannot replay spool %s yet: %s", spool.path, e)
            return False

    def _adopt_orphans(self) -> None:
        """Drain spools that ended processes left for this database."""
        with orphans(self.store.uri, self.store.spool_dir) as found:
            for spool in found:
                if len(spool) and self._replay_spool(spool):
                    log.info("modeltrail: replayed orphaned spool %s", spool.path)

    def _apply(self, kind: str, payload: dict[str, Any]) -> Any:
        if kind == "points":
            return self._apply_points(payload["batch_id"], payload["rows"])
        store = self.store
        if kind == "start":
            _, training_id = store.run(lambda s: operations.start_training(s, store, payload))
            self._ids[payload["uuid"]] = training_id
            return training_id
        if kind == "params":
            return store.run(
                lambda s: operations.add_params(s, self._training_id(s, payload["uuid"]), payload["params"])
            )
        if kind == "dataset":
            return store.run(
                lambda s: operations.attach_dataset(s, self._training_id(s, payload["uuid"]), payload["dataset"])
            )
        if kind == "stage":
            return store.run(lambda s: operations.add_stage(s, self._training_id(s, payload["uuid"]), payload["stage"]))
        if kind == "finish":
            return store.run(
                lambda s: operations.finish_training(s, store, self._training_id(s, payload["uuid"]), payload)
            )
        raise ValueError(f"unknown writer operation {kind!r}")

    def _training_id(self, s: Session, uuid_: str) -> int:
        found = self._ids.get(uuid_)
        if found is None:
            found = self._ids[uuid_] = operations.training_id(s, uuid_)
        return found

    # ----------------------------------------------------------------- points
    def _apply_points(self, batch_id: str, rows: list[MetricRow]) -> None:
        missing = {r[1] for r in rows if r[1] not in self._key_ids}
        if missing:
            # Committed on its own: a key id cached from a rolled-back batch would not exist.
            self.store.run(lambda s: self._key_ids.update(metrics.metric_key_ids(s, missing)))
        updated: dict[tuple[int, int], Summary] = {}
        try:
            self.store.run(lambda s: updated.update(self._write_points(s, batch_id, rows)))
        except BaseException:
            self._summaries.clear()  # unknown outcome: reload what the database has next time
            raise
        # Only a committed batch moves the cached summaries forward, so a retry starts clean.
        self._summaries.update(updated)
        self.written += len(rows)

    def _write_points(self, s: Session, batch_id: str, rows: list[MetricRow]) -> dict[tuple[int, int], Summary]:
        """Insert one batch of points and upsert their summaries; returns the new summaries."""
        if not metrics.claim_batch(s, batch_id):
            return {}  # written before: a replay after a lost acknowledgement
        ids = {u: self._training_id(s, u) for u in {r[0] for r in rows}}
        key_ids = self._key_ids
        cached = self._summaries
        pairs = {(ids[r[0]], key_ids[r[1]]) for r in rows}
        fresh = pairs - cached.keys()
        loaded = metrics.load_summaries(s, fresh) if fresh else {}
        touched = {p: (loaded[p] if p in loaded else cached[p]).copy() for p in pairs}
        out: list[PointRow] = []
        for training_uuid, key, step, value, ts in rows:
            training_id = ids[training_uuid]
            key_id = key_ids[key]
            if value - value == 0.0:  # finite: skip the call, this loop is the writer's hot path
                out.append((training_id, key_id, step, value, FINITE, ts))
            else:
                v, kind = encode_float(value)
                out.append((training_id, key_id, step, v, kind, ts))
            touched[(training_id, key_id)].add(step, value)
        metrics.insert_points(s, out)
        metrics.save_summaries(s, touched, time.time())
        return touched

    def _forget(self, uuid_: str) -> None:
        """Drop the caches of a finished training."""
        training_id = self._ids.pop(uuid_, None)
        for pair in [p for p in self._summaries if p[0] == training_id]:
            del self._summaries[pair]


# ------------------------------------------------------------------ registry
# One writer per Store, and a Store is per process and per database (see ``_store.get_store``).
_writers: dict[tuple[int, int], Writer] = {}
_writers_lock = threading.Lock()


def writer_for(store: Store) -> Writer:
    """The background writer of ``store`` in this process, started on first use.

    Closing the store (``Tracker.close``, ``close_all``) flushes, stops and joins it.
    """
    key = (os.getpid(), id(store))
    writer = _writers.get(key)
    if writer is None:
        with _writers_lock:
            writer = _writers.get(key)
            if writer is None:
                writer = _writers[key] = Writer(store)
                store.on_close(lambda: close_writer(store))
    return writer


def close_writer(store: Store) -> None:
    """Flush and stop the writer of ``store``, if it has one; the next :func:`writer_for` starts a new one."""
    with _writers_lock:
        writer = _writers.pop((os.getpid(), id(store)), None)
    if writer is not None:
        writer.close()


def _after_fork_in_child() -> None:
    # The parent's writer threads do not survive fork, and their spools are the parent's: drop them unclosed.
    for writer in _writers.values():
        writer._stop = True
        with contextlib.suppress(Exception):
            atexit.unregister(writer.close)
    _writers.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
