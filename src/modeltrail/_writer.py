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
* A write the database *refuses* (not an outage) never takes other writes with it: a
  metric batch is bisected until only the refused points are left, a params op is
  retried one param at a time, and what is left is reported (a
  :class:`ModeltrailWarning` at the next flush, ``failures``, and the training's
  context at its end). During a replay a refused spool entry goes to the spool's
  dead-letter file instead of blocking the entries behind it.
* When the spool folder cannot be written, the outage's work is kept in memory (bounded
  like the queue) and written when the database is back; one warning names the folder.
* This module owns the writers: :func:`writer_for` starts one per store and process and
  hooks its shutdown onto the store's close; the store itself knows nothing of writers.
  Each operation is applied by :mod:`modeltrail._operations.apply`; points and summaries by
  :mod:`modeltrail._operations.metrics`.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
import uuid
import warnings
from collections import deque
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from ._artifacts import ArtifactStore, Staging, digest_path, flavor_of, media_type
from ._errors import (
    ModeltrailError,
    ModeltrailWarning,
    PermissionDeniedError,
    SchemaError,
    StorageError,
    StorageUnavailableError,
    user_stacklevel,
)
from ._operations.apply import Applier, MetricRow, noting_refusals
from ._spool import Spool, dead_letter, describe, orphans, quarantine, training_of

if TYPE_CHECKING:
    from ._store import Store

log = logging.getLogger("modeltrail._writer")

#: Times the database may drop the connection on one spool entry while answering a probe before
#: the entry is taken for the cause (say, larger than ``max_allowed_packet``) and set aside.
STRIKES = 3
#: Descriptions of refused writes kept for the next report; beyond it the oldest half goes (logged already).
FAILURES_KEPT = 10_000


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
        self.spool: Spool | None = None
        #: What the database refused, in words (which training, what, why): never silently dropped.
        self.failures: list[str] = []
        self._failed: dict[str, list[str]] = {}
        self._reported = 0
        #: Work of an outage that the spool folder could not take, in order, until the database is back.
        self.held: deque[tuple[str, dict[str, Any]]] = deque()
        self._held_points = 0
        self._spool_broken: str | None = None
        self._warned_spool = False
        self._pid = os.getpid()
        self._applier = Applier(store)
        self._wake = threading.Event()
        self._stop = False
        self._warned_offline = False
        self._next_attempt = 0.0
        #: Until then the database is taken as down (it failed moments ago): nobody waits on it again.
        self._down_until = 0.0
        #: Why the writer last went offline: the database busy (still locked after retries), not away.
        self._busy = False
        #: The artifact store of the last artifact logged through this writer: staged uploads go there.
        self.artifact_store: ArtifactStore | None = None
        self._next_upload = 0.0
        self._warned_store = False
        if store.unavailable is not None and not store.schema_ready:
            # The store opened while the server was away: spool from the start until it answers.
            self._go_offline(store.unavailable)
        self._thread = threading.Thread(target=self._run, name="modeltrail-writer", daemon=True)
        # ``thread.stop()`` flushes and stops it, as harnesses that hunt leftover daemon threads expect (Lightning's
        # tests call it); the next writer_for(store) starts a new writer.
        self._thread.stop = functools.partial(close_writer, store)  # type: ignore[attr-defined]
        self._thread.start()
        atexit.register(self.close)

    # ------------------------------------------------------------- caller side
    @property
    def offline(self) -> bool:
        """True while anything waits in the spool or in memory (new work must queue behind it), or the
        database failed to answer less than a retry interval ago (a trainer would wait a connect
        timeout again just to learn what the writer knows: the first write after an unreachable
        open goes straight to the spool)."""
        return (
            bool(self.held)
            or self._spool_broken is not None
            or (self.spool is not None and len(self.spool) > 0)
            or time.monotonic() < self._down_until
        )

    @property
    def written(self) -> int:
        """Points this process has committed to the database."""
        return self._applier.written

    def register(self, uuid_: str, training_id: int) -> None:
        self._applier.register(uuid_, training_id)

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
        """Return once everything queued before this call is in the database or the durable spool.

        What the database refused is not raised (logging never stops a training): it is named in one
        :class:`ModeltrailWarning` here and kept in ``failures``.
        """
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
        self._report()

    def _report(self) -> None:
        """Warn, on the caller's thread, about what the database refused since the last report."""
        new, self._reported = self.failures[self._reported :], len(self.failures)
        if new:
            shown = "; ".join(new[:5]) + (f"; and {len(new) - 5} more" if len(new) > 5 else "")
            warnings.warn(
                f"modeltrail: {len(new)} write(s) to {self.store.display_uri} were refused and are not recorded "
                f"(the rest were): {shown}",
                ModeltrailWarning,
                stacklevel=3,
            )

    def sync(self, timeout: float | None = None) -> int:
        """Replay the spool now (and orphaned spools of ended processes); returns entries still waiting."""
        op = self.submit("sync", {})
        self._wake.set()
        if not op.done.wait(timeout):
            raise StorageError(f"timed out after {timeout}s replaying the spool", value=timeout)
        self._report()
        if isinstance(op.error, ModeltrailError):
            raise op.error
        if op.error is not None:  # never a raw error from below (a spool folder, a driver)
            raise StorageError(f"replaying the spool for {self.store.display_uri} failed: {op.error}") from op.error
        return int(op.result or 0)

    def close(self) -> None:
        if self._stop or os.getpid() != self._pid:
            return  # a forked child's inherited writer (an atexit handler): its spool is the parent's
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
        if self.held:
            warnings.warn(
                f"modeltrail: {len(self.held)} entries for {self.store.display_uri} are lost: the database did not "
                f"come back and the spool folder could not be written ({self._spool_broken})",
                ModeltrailWarning,
                stacklevel=2,
            )
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    # ------------------------------------------------------------- writer side
    def _run(self) -> None:
        with contextlib.suppress(Exception):
            self._adopt_orphans()
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                if self.offline and time.monotonic() >= self._next_attempt:
                    self._replay()
            except Exception as e:  # the thread must outlive anything one replay meets
                log.exception("modeltrail: writer error while replaying")
                self._fail("replay", {}, e)
            try:
                self._upload_staged()
            except Exception as e:  # likewise: a staged upload that fails is reported, the thread goes on
                log.exception("modeltrail: writer error while uploading staged artifacts")
                self._fail("artifact upload", {}, e)
            while self.queue:
                try:
                    self._drain_once()
                except Exception as e:  # the thread must outlive any one bad batch
                    log.exception("modeltrail: writer error")
                    self._fail("write", {}, e)
            if self._stop and not self.queue:
                if self.offline and self._busy:
                    # Busy is not away: the database answers, so one last replay leaves nothing of this
                    # process's (a deadlocked finish, say) for a next process that may never come.
                    with contextlib.suppress(Exception):
                        self._replay()
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
            except Exception as e:  # reported, in words, at the next flush: never silently dropped
                self._fail("points", {"rows": rows}, e)
        if op is None:
            return
        q.popleft()
        try:
            if op.kind == "flush":
                pass  # reaching it is the answer; refusals are reported by the caller's flush
            elif op.kind == "sync":
                self._adopt_orphans()
                self._replay()
                self._upload_staged(force=True)
                op.result = len(self.spool) if self.spool is not None else 0
            elif op.kind == "artifact":
                self._artifact(op.payload)
            elif op.kind == "forget":
                self._forget(op.payload["uuid"])
            else:
                op.result = self._deliver(op.kind, op.payload)
        except Exception as e:
            op.error = e
            self._fail(op.kind, op.payload, e)
        finally:
            op.done.set()

    # ------------------------------------------------------------- artifacts
    @property
    def staging(self) -> Staging:
        """Where bytes wait for an unreachable artifact store: beside this database's spool."""
        from ._spool import spool_dir_for

        return Staging(spool_dir_for(self.store.uri, self.store.spool_dir) / "artifacts")

    def _artifact(self, payload: dict[str, Any]) -> None:
        """Hash the file (or directory), store its bytes (or stage them), then write its row like any operation."""
        store: ArtifactStore | None = payload.pop("store", None)
        digest = digest_path(payload["path"])
        row = {
            **payload,
            "kind": digest.kind, "sha256": digest.sha256, "size": digest.size, "files": max(len(digest.files), 1),
            "media_type": media_type(payload["path"], digest.kind), "store_url": None, "key": None, "state": "local",
            "flavor": flavor_of(payload["path"], payload.get("flavor"), payload.get("info")) if digest.kind == "file"
            else payload.get("flavor"),
        }  # fmt: skip
        if store is not None:
            self.artifact_store = store
            row["store_url"] = store.public
            try:
                row["key"] = store.store(payload["path"], digest)
                row["state"], row["stored_ts"] = "stored", time.time()
            except StorageUnavailableError as e:
                self.staging.stage(payload["path"], digest, store.public)
                row["key"] = store.key_of(digest)
                row["state"] = "pending"
                self._next_upload = time.monotonic() + self.retry_interval
                self._store_down(e)
        self._deliver("artifact", row)

    def _store_down(self, error: BaseException) -> None:
        if self._warned_store:
            return
        self._warned_store = True
        warnings.warn(
            f"modeltrail: {error}; training continues, artifacts are staged in {self.staging.folder} and uploaded "
            "when the store answers (their versions say 'pending' until then)",
            ModeltrailWarning,
            stacklevel=2,
        )

    def _upload_staged(self, *, force: bool = False) -> None:
        """Upload what waits in the staging folder (this process's or an ended one's), then mark it stored."""
        store = self.artifact_store
        if store is None or (not force and time.monotonic() < self._next_upload):
            return
        staging = self.staging
        if not staging.waiting():
            self._next_upload = time.monotonic() + 30 * self.retry_interval  # look again now and then
            return
        try:
            done = staging.upload(store)
        except StorageUnavailableError:
            self._next_upload = time.monotonic() + self.retry_interval
            return
        for sha in done:
            self._deliver("artifact_stored", {"uuid": None, "sha256": sha, "stored_ts": time.time()})
        if done:
            log.info("modeltrail: %d staged artifact(s) uploaded to %s", len(done), store.public)
            self._warned_store = False

    def _fail(self, kind: str, payload: Any, error: BaseException) -> None:
        """Keep, in words, what the database refused: reported at the next flush and at the training's end."""
        text_ = f"{describe(kind, payload)} of training {training_of(kind, payload)}: {type(error).__name__}: {error}"
        text_ = self.store.scrub(text_)
        log.error("modeltrail: not recorded: %s", text_)
        if len(self.failures) >= FAILURES_KEPT:  # a lasting fault must not grow memory without bound
            dropped = len(self.failures) // 2
            del self.failures[:dropped]
            self._reported = max(0, self._reported - dropped)
        self.failures.append(text_)
        uuids = {r[0] for r in payload.get("rows", ())} if kind == "points" else {payload.get("uuid")}
        for u in uuids - {None}:
            self._failed.setdefault(str(u), []).append(text_)

    def _deliver(self, kind: str, payload: dict[str, Any]) -> Any:
        """Write to the database, or to the spool while it is unreachable (or the spool is not empty).

        What the database refuses is split until only the refused part is left, which is reported.
        """
        if not self.offline:
            try:
                if kind == "points":
                    return self._points_split(payload, on_refused=self._fail)
                if kind == "params" and len(payload["params"]) > 1:
                    return self._params_split(payload, on_refused=self._fail)
                return self._apply(kind, payload)
            except StorageUnavailableError as e:
                self._go_offline(e)
            except StorageError as e:
                if not self.store.is_retryable(e) or isinstance(e.__cause__, sa_exc.IntegrityError):
                    raise
                # Still locked or deadlocked after the store's retries: the database is busy, not refusing.
                # Keep the work (spooled, replayed in order) rather than call it refused or drop it.
                self._go_offline(e)
        self._to_spool(kind, payload)
        return None

    def _to_spool(self, kind: str, payload: dict[str, Any]) -> None:
        """Spool one entry; when the spool folder cannot be written, hold it in memory instead (bounded).

        A finish carries what of its training was refused: the list is forgotten with the training,
        before the spool is replayed.
        """
        if kind == "finish":
            payload = noting_refusals(payload, self._failed.get(payload["uuid"]))
        if self._spool_broken is None:
            try:
                if self.spool is None:
                    self.spool = Spool.create(self.store.uri, self.store.spool_dir)
                self.spool.append(kind, payload)  # JSON: tuples come back as lists, which unpack alike
                return
            except (OSError, sqlite3.Error) as e:
                self._spool_unwritable(e)
        size = len(payload["rows"]) if kind == "points" else 1
        if self._held_points + size > self.max_pending:
            self._fail(kind, payload, MemoryError(f"over {self.max_pending} entries held in memory"))
            return
        self._held_points += size
        self.held.append((kind, payload))

    def _spool_unwritable(self, error: BaseException) -> None:
        from ._spool import spool_dir_for

        self._spool_broken = f"{type(error).__name__}: {error}"
        if self._warned_spool:
            return
        self._warned_spool = True
        warnings.warn(
            f"modeltrail: the spool folder {spool_dir_for(self.store.uri, self.store.spool_dir)} cannot be written "
            f"({self._spool_broken}); until {self.store.display_uri} is back, what is logged is kept in memory "
            f"(at most {self.max_pending} points) and lost if this process ends first",
            ModeltrailWarning,
            stacklevel=2,
        )

    def _go_offline(self, error: BaseException) -> None:
        self._applier.outcome_unknown()
        self._next_attempt = self._down_until = time.monotonic() + self.retry_interval
        self._busy = not isinstance(error, StorageUnavailableError)
        if self.spool is None and self._spool_broken is None:
            try:
                self.spool = Spool.create(self.store.uri, self.store.spool_dir)
            except (OSError, sqlite3.Error) as e:
                self._spool_unwritable(e)
        if not self._warned_offline:
            self._warned_offline = True
            if self.spool is not None:
                where = (
                    f"spooled to {self.spool.path}; the next modeltrail process that reaches the database replays "
                    f"it, or run `modeltrail sync` (MODELTRAIL_URI={self.store.display_uri}) once it is back"
                )
            else:
                where = "kept in memory until the database is back (the spool folder cannot be written)"
            state = "unreachable" if isinstance(error, StorageUnavailableError) else "busy (still locked after retries)"
            warnings.warn(
                f"modeltrail: the database is {state} ({error}); training continues and everything logged is "
                f"{where}. Versions of trainings that finish meanwhile are pending until then.",
                RuntimeWarning,
                stacklevel=user_stacklevel(),
            )

    def _points_split(self, payload: dict[str, Any], *, on_refused: Any, replay: bool = False) -> None:
        """Write a metric batch; when the database refuses it, write each half on its own, down to single points.

        The halves get batch ids derived from the parent's, so a replay of the whole batch stays idempotent.
        A replayed batch (``replay``) whose halves were written before (an outage cut its split short) is
        split again without being tried whole, which would write those halves a second time.
        """
        batch_id, rows = payload["batch_id"], payload["rows"]

        def halves() -> list[dict[str, Any]]:  # named only when needed: the live path rarely splits
            half = len(rows) // 2
            return [
                {"batch_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"modeltrail:{batch_id}/{i}")), "rows": part}
                for i, part in enumerate((rows[:half], rows[half:]))
            ]

        parts = halves() if replay and len(rows) > 1 else None
        if parts is None or not self._applier.any_claimed([p["batch_id"] for p in parts]):
            try:
                self._applier.points(batch_id, rows)
                return
            except Exception as e:
                if not self._refused(e):
                    raise
                # One point at fault is found by halving; a fault of the whole batch (its training is not in
                # the ledger, say) is reported once rather than point by point.
                if len(rows) == 1 or (isinstance(e, ModeltrailError) and not isinstance(e, StorageError)):
                    on_refused("points", payload, e)
                    return
        for part in parts or halves():
            self._points_split(part, on_refused=on_refused, replay=replay)

    def _params_split(self, payload: dict[str, Any], *, on_refused: Any) -> None:
        """Write params together; when refused, one at a time, so one bad param takes no other with it."""
        try:
            self._apply("params", payload)
        except Exception as e:
            if not self._refused(e):
                raise
            for key, value in payload["params"].items():
                one = {"uuid": payload["uuid"], "params": {key: value}}
                try:
                    self._apply("params", one)
                except Exception as e1:
                    if not self._refused(e1):
                        raise
                    on_refused("params", one, e1)

    def _refused(self, error: BaseException) -> bool:
        """The database (or the driver) refused this write itself: not an outage, not a ledger-wide condition."""
        if isinstance(error, StorageUnavailableError | PermissionDeniedError | SchemaError):
            return False
        if isinstance(error, StorageError) and self.store.is_retryable(error):
            return isinstance(error.__cause__, sa_exc.IntegrityError)  # retried already: not a duplicate race
        return isinstance(error, Exception)

    def _replay(self) -> None:
        """Drain the spool, then what is held in memory, oldest-first; stop where the database cannot take more yet."""
        self._next_attempt = time.monotonic() + self.retry_interval
        if self.spool is not None and not self._replay_spool(self.spool):
            return
        if self.held and not self._replay_held():
            return
        self._spool_broken = None  # drained: the next outage tries the spool folder again
        log.info("modeltrail: spool drained into %s", self.store.display_uri)

    def _replay_held(self) -> bool:
        try:
            self.store.ensure_schema()
            while self.held:
                kind, payload = self.held[0]
                try:
                    if kind == "points":
                        self._points_split(payload, on_refused=self._fail, replay=True)
                    elif kind == "params" and len(payload["params"]) > 1:
                        self._params_split(payload, on_refused=self._fail)
                    else:
                        self._apply(kind, payload)
                except Exception as e:
                    if not self._refused(e):
                        raise
                    self._fail(kind, payload, e)
                self.held.popleft()
                self._held_points -= len(payload["rows"]) if kind == "points" else 1
            return True
        except StorageUnavailableError:
            return False
        except ModeltrailError as e:
            log.error("modeltrail: cannot write what is held in memory yet: %s", e)
            return False

    def _replay_spool(self, spool: Spool) -> bool:
        try:
            self.store.ensure_schema()
            while True:
                batch = list(spool.entries(100))
                if not batch:
                    return True
                for seq, kind, payload in batch:
                    self._replay_entry(spool, seq, kind, payload)
                    spool.ack(seq)
        except StorageUnavailableError:
            return False
        except ModeltrailError as e:
            log.error("modeltrail: cannot replay spool %s yet: %s", spool.path, e)
            return False
        except sqlite3.Error as e:
            if spool is self.spool:
                log.error("modeltrail: cannot read this process's spool %s: %s", spool.path, e)
            else:
                quarantine(spool.path, f"{type(e).__name__}: {e}")
            return False

    def _replay_entry(self, spool: Spool, seq: int, kind: str, payload: dict[str, Any] | str) -> None:
        """Apply one spooled entry; what the database refuses goes to the dead-letter file, not in the way.

        The caller acks the entry once this returns; an outage midway replays it again later (the
        parts already written are skipped by their batch ids and natural keys).
        """

        def set_aside(kind_: str, part: Any, error: BaseException | str) -> None:
            reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
            dead_letter(
                spool.path.parent, source=spool.path.name, kind=kind_, payload=part, reason=self.store.scrub(reason)
            )

        if isinstance(payload, str):
            set_aside(kind, payload, "the entry is not valid JSON: the spool file was damaged")
            return
        for _ in range(STRIKES):
            try:
                if kind == "points":
                    return self._points_split(payload, on_refused=set_aside, replay=True)
                if kind == "params" and len(payload.get("params", ())) > 1:
                    return self._params_split(payload, on_refused=set_aside)
                self._apply(kind, payload)
                return
            except StorageUnavailableError:
                if not self._answers():
                    raise
                # the server answers, yet dropped the connection on this entry: try again, then set it aside
            except Exception as e:
                if not self._refused(e):
                    raise
                return set_aside(kind, payload, e)
        set_aside(
            kind,
            payload,
            f"the database dropped the connection on this entry {STRIKES} times while "
            "answering other queries (too large for max_allowed_packet?)",
        )

    def _answers(self) -> bool:
        """Whether the database answers a trivial query right now."""
        try:
            self.store.run(lambda s: s.execute(text("SELECT 1")), attempts=1)
        except Exception:
            return False
        return True

    def _adopt_orphans(self) -> None:
        """Drain spools that ended processes left for this database."""
        with orphans(self.store.uri, self.store.spool_dir) as found:
            for spool in found:
                if len(spool) and self._replay_spool(spool):
                    log.info("modeltrail: replayed orphaned spool %s", spool.path)

    def _apply(self, kind: str, payload: dict[str, Any]) -> Any:
        """Write one operation now (its own transaction); a finish says what of its training was refused."""
        not_recorded = self._failed.get(payload["uuid"]) if kind == "finish" else None
        return self._applier.apply(kind, payload, not_recorded=not_recorded)

    def _forget(self, uuid_: str) -> None:
        """Drop the caches of a finished training."""
        self._applier.forget(uuid_)
        self._failed.pop(uuid_, None)


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


def flush_writer(store: Store, timeout: float | None = None) -> None:
    """Flush the writer of ``store`` if it has one (a Tracker that only read starts none)."""
    writer = _writers.get((os.getpid(), id(store)))
    if writer is not None:
        writer.flush(timeout)


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
