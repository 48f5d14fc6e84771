"""Applying one queued or spooled operation to the database, by its kind.

The writer and the spool replay speak the same small vocabulary (start, params, dataset, stage,
points, artifact, artifact_stored, finish); this is where each word becomes its write. The caches here (training ids by
uuid, metric key ids, the running summaries) are what keep the writer's batches cheap.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from .._values import FINITE, encode_float
from . import artifacts, metrics
from . import trainings as operations
from .metrics import PointRow, Summary

if TYPE_CHECKING:
    from .._store import Store

#: One queued point: (training uuid, metric key, step, value, time).
MetricRow = tuple[str, str, int, float, float]


class Applier:
    """Writes operations for one store, each in its own transaction (retried by ``Store.run``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: Points committed so far by this process.
        self.written = 0
        self._ids: dict[str, int] = {}
        self._key_ids: dict[str, int] = {}
        self._summaries: dict[tuple[int, int], Summary] = {}

    def register(self, uuid_: str, training_id: int) -> None:
        """A training started synchronously: its id is known without a query."""
        self._ids[uuid_] = training_id

    def forget(self, uuid_: str) -> None:
        """Drop the caches of a finished training."""
        training_id = self._ids.pop(uuid_, None)
        for pair in [p for p in self._summaries if p[0] == training_id]:
            del self._summaries[pair]

    def outcome_unknown(self) -> None:
        """A write failed half-way (the database went away): reload summaries from the database next time."""
        self._summaries.clear()

    def apply(self, kind: str, payload: dict[str, Any], *, not_recorded: list[str] | None = None) -> Any:
        if kind == "points":
            return self.points(payload["batch_id"], payload["rows"])
        store = self.store
        if kind == "start":
            _, training_id = store.run(lambda s: operations.start_training(s, store, payload))
            self._ids[payload["uuid"]] = training_id
            return training_id
        if kind == "params":
            return store.run(
                lambda s: operations.add_params(s, self.training_id(s, payload["uuid"]), payload["params"])
            )
        if kind == "dataset":
            return store.run(
                lambda s: operations.attach_dataset(s, self.training_id(s, payload["uuid"]), payload["dataset"])
            )
        if kind == "stage":
            return store.run(lambda s: operations.add_stage(s, self.training_id(s, payload["uuid"]), payload["stage"]))
        if kind == "artifact":
            return store.run(lambda s: artifacts.add_artifact(s, self.training_id(s, payload["uuid"]), payload))
        if kind == "artifact_stored":
            return store.run(lambda s: artifacts.mark_stored(s, payload["sha256"], payload["stored_ts"]))
        if kind == "finish":
            payload = noting_refusals(payload, not_recorded)
            return store.run(
                lambda s: operations.finish_training(s, store, self.training_id(s, payload["uuid"]), payload)
            )
        raise ValueError(f"unknown writer operation {kind!r}")

    def training_id(self, s: Session, uuid_: str) -> int:
        found = self._ids.get(uuid_)
        if found is None:
            found = self._ids[uuid_] = operations.training_id(s, uuid_)
        return found

    # ----------------------------------------------------------------- points
    def points(self, batch_id: str, rows: list[MetricRow]) -> None:
        """Write one batch of points and their summaries, once (a replayed batch id is skipped)."""
        missing = {r[1] for r in rows if r[1] not in self._key_ids}
        if missing:
            # Committed on its own: a key id cached from a rolled-back batch would not exist.
            self.store.run(lambda s: self._key_ids.update(metrics.metric_key_ids(s, missing)))
        updated: dict[tuple[int, int], Summary] = {}
        try:
            # Not causal on Galera: a stale read of a batch id is caught by its primary key (retried).
            self.store.run(lambda s: updated.update(self._write_points(s, batch_id, rows)), causal=False)
        except BaseException:
            self._summaries.clear()  # unknown outcome: reload what the database has next time
            raise
        # Only a committed batch moves the cached summaries forward, so a retry starts clean.
        self._summaries.update(updated)
        self.written += len(rows)

    def any_claimed(self, batch_ids: list[str]) -> bool:
        """Whether a batch of ``batch_ids`` is in the ledger already (how a replay finds a batch split before)."""
        return self.store.run(lambda s: metrics.any_claimed(s, batch_ids), read_only=True)

    def _write_points(self, s: Session, batch_id: str, rows: list[MetricRow]) -> dict[tuple[int, int], Summary]:
        """Insert one batch of points and upsert their summaries; returns the new summaries."""
        if not metrics.claim_batch(s, batch_id):
            return {}  # written before: a replay after a lost acknowledgement
        ids = {u: self.training_id(s, u) for u in {r[0] for r in rows}}
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
            summary = touched[(training_id, key_id)]
            if value - value == 0.0 and value:  # finite, not ±0.0: skip the call (the hot path)
                out.append((training_id, key_id, step, summary.count, value, FINITE, ts))
            else:
                v, kind = encode_float(value)
                out.append((training_id, key_id, step, summary.count, v, kind, ts))
            summary.add(step, value, ts)
        metrics.insert_points(s, out)
        metrics.save_summaries(s, touched, time.time())
        return touched


def noting_refusals(finish: dict[str, Any], not_recorded: list[str] | None) -> dict[str, Any]:
    """A training's finish whose context says what of the training the database refused (the ledger keeps it)."""
    if not not_recorded:
        return finish
    return {**finish, "context": {**(finish.get("context") or {}), "modeltrail_not_recorded": list(not_recorded)}}
