"""The background writer: the caller enqueues, one thread per store writes in batches.

Why it looks like this:

* ``log_metric`` must cost microseconds, so the caller only appends a tuple to a
  ``deque`` (atomic under the GIL, no lock, no wake-up call). The writer wakes on a
  short timer, drains everything queued and writes it as multi-row INSERTs through
  the driver's ``executemany`` (PyMySQL turns that into one multi-row statement).
* Per-metric summaries (last/min/max with their steps) are merged in memory and
  upserted once per batch, so a comparison never scans the history.
* Nothing is dropped: a failed batch is retried with backoff and its rows stay
  queued; the queue has a bound beyond which the caller waits for the writer
  instead of growing memory without limit.
* Everything else (params, flush markers) goes through the same queue as small
  operation objects, so a flush marker is reached only after every row before it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Connection

from . import schema
from .errors import ModeltrailError, StorageError, StorageUnavailableError
from .store import upsert
from .values import DBL_MAX, FINITE, NAN, NEG_INF, POS_INF, decode_float

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("modeltrail.writer")

#: One queued metric point: (training_id, key, step, value, unix_time).
MetricRow = tuple[int, str, int, float, float]

_SUMMARY_COLUMNS = [
    "count", "last_step", "last_value", "last_kind", "min_step", "min_value", "min_kind",
    "max_step", "max_value", "max_kind", "updated_ts",
]  # fmt: skip


class Op:
    """A queued operation other than a metric point; runs on the writer thread."""

    def __init__(self, fn: Callable[[Connection], None] | None = None) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.error: BaseException | None = None


class Summary:
    """Running last/min/max of one metric of one training (NaN never wins min or max)."""

    __slots__ = ("count", "last", "last_step", "max", "max_step", "min", "min_step")

    def __init__(self) -> None:
        self.count = 0
        self.last_step = -1
        self.last = 0.0
        self.min: float | None = None
        self.min_step: int | None = None
        self.max: float | None = None
        self.max_step: int | None = None

    def copy(self) -> Summary:
        other = Summary()
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        return other

    def add(self, step: int, value: float) -> None:
        self.count += 1
        if step >= self.last_step:
            self.last_step, self.last = step, value
        if value == value:
            if self.min is None or value < self.min:
                self.min, self.min_step = value, step
            if self.max is None or value > self.max:
                self.max, self.max_step = value, step

    def row(self, training_id: int, key_id: int, now: float) -> dict[str, Any]:
        last_value, last_kind = _encode(self.last)
        min_value, min_kind = _encode(self.min) if self.min is not None else (None, NAN)
        max_value, max_kind = _encode(self.max) if self.max is not None else (None, NAN)
        return {
            "training_id": training_id, "key_id": key_id, "count": self.count,
            "last_step": self.last_step, "last_value": last_value, "last_kind": last_kind,
            "min_step": self.min_step, "min_value": min_value, "min_kind": min_kind,
            "max_step": self.max_step, "max_value": max_value, "max_kind": max_kind,
            "updated_ts": now,
        }  # fmt: skip

    @classmethod
    def from_row(cls, row: Any) -> Summary:
        s = cls()
        s.count, s.last_step = row.count, row.last_step
        s.last = decode_float(row.last_value, row.last_kind)
        if row.min_step is not None:
            s.min, s.min_step = decode_float(row.min_value, row.min_kind), row.min_step
        if row.max_step is not None:
            s.max, s.max_step = decode_float(row.max_value, row.max_kind), row.max_step
        return s


def _encode(v: float) -> tuple[float | None, int]:
    if v - v == 0.0:  # finite: the common case, one comparison
        return v, FINITE
    if v != v:
        return None, NAN
    return (DBL_MAX, POS_INF) if v > 0 else (-DBL_MAX, NEG_INF)


class Writer:
    """One background thread that owns all writes of logged data for one :class:`Store`."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float = 0.05,
        batch_size: int = 20_000,
        max_pending: int = 1_000_000,
    ) -> None:
        self.store = store
        self.queue: deque[MetricRow | Op] = deque()
        self.interval = interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.written = 0
        #: Rows whose batch failed for good (not a connectivity problem); kept for inspection.
        self.unwritten: list[MetricRow] = []
        self._error: Exception | None = None
        self._key_ids: dict[str, int] = {}
        self._summaries: dict[tuple[int, int], Summary] = {}
        self._wake = threading.Event()
        self._stop = False
        self._warned = False
        self._insert_sql = self._points_sql()
        self._thread = threading.Thread(target=self._run, name="modeltrail-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # ------------------------------------------------------------- caller side
    def wait_for_room(self) -> None:
        """Back-pressure: block the caller while the queue is over its bound."""
        self._wake.set()
        while len(self.queue) > self.max_pending and self._thread.is_alive():
            time.sleep(0.005)

    def submit(self, fn: Callable[[Connection], None]) -> Op:
        op = Op(fn)
        self.queue.append(op)
        return op

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything queued before this call is in the database."""
        if not self._thread.is_alive():
            if self.queue:
                raise StorageError(f"the modeltrail writer for {self.store.display_uri} has stopped")
            return
        op = Op()
        self.queue.append(op)
        self._wake.set()
        if not op.done.wait(timeout):
            raise StorageError(
                f"timed out after {timeout}s writing to {self.store.display_uri}; data stays queued",
                value=timeout,
            )
        if op.error is not None:
            raise op.error

    def close(self) -> None:
        if self._stop:
            return
        with contextlib.suppress(ModeltrailError):
            self.flush()
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    # ------------------------------------------------------------- writer side
    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
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
        rows: list[MetricRow] = []
        op: Op | None = None
        limit = self.batch_size
        while q and len(rows) < limit:
            item = q[0]
            if type(item) is tuple:
                rows.append(item)
                q.popleft()
            else:
                op = item  # type: ignore[assignment]
                break
        if rows:
            missing = {r[1] for r in rows if r[1] not in self._key_ids}
            updated: dict[tuple[int, int], Summary] = {}
            try:
                if missing:
                    # Committed on its own: a key id cached from a rolled-back batch would not exist.
                    self._with_retry(lambda conn: self._resolve_keys(conn, missing))
                self._with_retry(lambda conn: updated.update(self._write_points(conn, rows)))
            except Exception as e:
                self.unwritten.extend(rows)  # kept, reported at the next flush, never silently dropped
                self._error = e
            else:
                # Only a committed batch moves the cached summaries forward, so a retry starts clean.
                self._summaries.update(updated)
                self.written += len(rows)
        if op is not None:
            q.popleft()
            if op.fn is not None:
                try:
                    self._with_retry(op.fn)
                except Exception as e:
                    op.error = e
            else:  # a flush marker reports what failed since the last one
                op.error, self._error = self._error, None
            op.done.set()

    def _with_retry(self, work: Callable[[Connection], None]) -> None:
        """Retry until written: forever while the server is unreachable, a few times otherwise."""
        delay, attempt = 0.05, 0
        while True:
            attempt += 1
            try:
                with self.store.connect() as conn:
                    work(conn)
                return
            except StorageError as e:
                unreachable = isinstance(e, StorageUnavailableError) or self.store.is_retryable(e)
                if not self._warned:
                    self._warned = True
                    warnings.warn(f"modeltrail: writing failed, retrying: {e}", RuntimeWarning, stacklevel=1)
                if (not unreachable and attempt >= 3) or (self._stop and attempt >= 5):
                    log.error("modeltrail: giving up on a batch after %d attempts: %s", attempt, e)
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _points_sql(self) -> str:
        mark = "?" if self.store.engine.dialect.paramstyle == "qmark" else "%s"
        marks = ", ".join([mark] * 6)
        return f"INSERT INTO metric_points (training_id, key_id, step, value, kind, ts) VALUES ({marks})"

    def _write_points(self, conn: Connection, rows: list[MetricRow]) -> dict[tuple[int, int], Summary]:
        """Insert one batch of points and upsert their summaries; returns the new summaries."""
        key_ids = self._key_ids
        cached = self._summaries
        pairs = {(r[0], key_ids[r[1]]) for r in rows}
        fresh = pairs - cached.keys()
        loaded = self._load_summaries(conn, fresh) if fresh else {}
        touched = {p: (loaded[p] if p in loaded else cached[p]).copy() for p in pairs}
        out = []
        for training_id, key, step, value, ts in rows:
            key_id = key_ids[key]
            if value - value == 0.0:
                out.append((training_id, key_id, step, value, FINITE, ts))
            else:
                v, kind = _encode(value)
                out.append((training_id, key_id, step, v, kind, ts))
            touched[(training_id, key_id)].add(step, value)
        conn.exec_driver_sql(self._insert_sql, out)
        now = time.time()
        upsert(
            conn,
            schema.MetricSummary.__table__,
            [s.row(p[0], p[1], now) for p, s in sorted(touched.items())],
            keys=["training_id", "key_id"],
            update=_SUMMARY_COLUMNS,
        )
        return touched

    def _resolve_keys(self, conn: Connection, names: set[str]) -> None:
        table = schema.MetricKey.__table__
        upsert(conn, table, [{"name": n} for n in sorted(names)], keys=["name"])
        for name, key_id in conn.execute(select(table.c.name, table.c.id).where(table.c.name.in_(names))):
            self._key_ids[name] = key_id

    def _load_summaries(self, conn: Connection, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], Summary]:
        """Summaries already stored for ``pairs`` (a training resumed or replayed), empty ones for the rest."""
        table = schema.MetricSummary.__table__
        found = {p: Summary() for p in pairs}
        query = select(table).where(tuple_(table.c.training_id, table.c.key_id).in_(sorted(pairs)))
        for row in conn.execute(query):
            found[(row.training_id, row.key_id)] = Summary.from_row(row)
        return found

    def forget(self, training_id: int) -> None:
        """Drop cached summaries of a finished training (called on the writer thread)."""
        for pair in [p for p in self._summaries if p[0] == training_id]:
            del self._summaries[pair]
