"""Retention for long histories: ``modeltrail db compact``.

Trainings that ended before a cutoff keep their summaries (last/min/max, untouched), their
``metric_blocks`` (so the dashboard still draws the whole curve) and, per metric, a downsampled
curve of at most ``keep`` raw points: the first and last points and each bucket's lowest and
highest, so the summary's minimum and maximum points stay among them. Every other raw point goes.

Each training is one transaction with its audit event (``training.compact``, the counts before and
after), so an interrupted run loses nothing and running it again finishes the rest: a metric
already at or under ``keep`` points is left alone. A running training is never touched, and the
status is read again, locked, inside the transaction that deletes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._audit import record_event
from .._errors import ValidationError
from .._rows import resolve_model

if TYPE_CHECKING:
    from .._store import Store

_AGE = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNIT = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}
#: Kept points per metric at the least: the first, the last and one bucket's two extremes.
KEEP_MIN = 4
#: Seqs of the points to keep, deleted around in statements of at most this many.
_IN_MAX = 1_000


@dataclasses.dataclass(frozen=True)
class CompactedTraining:
    """What compaction did (or, dry, would do) to one training's raw points."""

    training_id: int
    model: str
    ended_at: dt.datetime
    points_before: int
    points_after: int


@dataclasses.dataclass(frozen=True)
class CompactReport:
    cutoff: dt.datetime
    keep: int
    dry_run: bool
    trainings: list[CompactedTraining]

    @property
    def points_deleted(self) -> int:
        return sum(t.points_before - t.points_after for t in self.trainings)


def parse_age(text: Any) -> dt.timedelta:
    """``90d``, ``12h`` or ``2w``: how long ago a training must have ended."""
    match = _AGE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValidationError(f"an age is a number of hours, days or weeks (12h, 90d, 2w), got {text!r}", value=text)
    return int(match.group(1)) * _UNIT[match.group(2)]


def check_keep(keep: Any) -> int:
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < KEEP_MIN:
        raise ValidationError(f"keep must be an integer of at least {KEEP_MIN} points, got {keep!r}", value=keep)
    return keep


def kept_seqs(rows: list[Any], keep: int) -> set[int]:
    """Of one metric's ``(seq, value)`` rows in step order, the seqs of a ``keep``-point curve.

    The first and the last, then per bucket the lowest and highest point (NaN never wins).
    """
    if len(rows) <= keep:
        return {r[0] for r in rows}
    out = {rows[0][0], rows[-1][0]}
    buckets = (keep - 2) // 2
    per = math.ceil(len(rows) / buckets)
    for start in range(0, len(rows), per):
        finite = [r for r in rows[start : start + per] if r[1] is not None]
        if finite:
            out.add(min(finite, key=lambda r: r[1])[0])
            out.add(max(finite, key=lambda r: r[1])[0])
    return out


def candidates(s: Session, cutoff: dt.datetime, model_ref: Any = None) -> list[tuple[int, str, dt.datetime]]:
    """Ended trainings (finished or failed) that ended before ``cutoff``: (id, model name, ended at), oldest first."""
    t, m = schema.TrainingRow, schema.ModelRow
    query = (
        select(t.id, m.name, t.ended_at)
        .join(m, m.id == t.model_id)
        .where(t.status != "running", t.ended_at.is_not(None), t.ended_at < cutoff)
        .order_by(t.ended_at, t.id)
    )
    if model_ref is not None:
        query = query.where(t.model_id == resolve_model(s, model_ref).id)
    return [(tid, name, ended) for tid, name, ended in s.execute(query) if ended is not None]


def compact_training(s: Session, store: Store, training_id: int, keep: int, *, dry_run: bool) -> tuple[int, int]:
    """Thin one ended training's raw points to ``keep`` per metric; (points before, points after)."""
    t, mp = schema.TrainingRow, schema.MetricPointRow
    status = s.execute(select(t.status).where(t.id == training_id).with_for_update()).scalar_one_or_none()
    if status is None or status == "running":
        return 0, 0
    counts = s.execute(
        select(mp.key_id, func.count()).where(mp.training_id == training_id).group_by(mp.key_id).order_by(mp.key_id)
    ).all()
    before = sum(n for _, n in counts)
    after = 0
    for key_id, n in counts:
        if n <= keep:
            after += n
            continue
        pair = (mp.training_id == training_id, mp.key_id == key_id)
        rows = s.execute(select(mp.seq, mp.value).where(*pair).order_by(mp.step, mp.seq)).all()
        kept = kept_seqs(list(rows), keep)
        after += len(kept)
        if dry_run:
            continue
        # Delete the runs between kept points, by seq ranges (seq is unique within one metric).
        bounds: list[int | None] = [-1, *sorted(kept), None]
        for i in range(0, len(bounds) - 1, _IN_MAX):
            chunk = bounds[i : i + _IN_MAX + 1]
            low, high, inner = chunk[0], chunk[-1], chunk[1:-1]
            query = delete(mp).where(*pair, mp.seq > (low if low is not None else -1))
            if high is not None:
                query = query.where(mp.seq < high)
            if inner:
                query = query.where(mp.seq.not_in(inner))
            s.execute(query)
    if not dry_run and after < before:
        record_event(
            s, store, action="training.compact", entity="training", entity_id=training_id,
            before={"points": before}, after={"points": after, "keep_per_metric": keep},
        )  # fmt: skip
    return before, after


def compact(
    store: Store,
    *,
    older_than: Any,
    keep: int,
    model: Any = None,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> CompactReport:
    """Compact every training that ended more than ``older_than`` ago (of ``model``), each in its own transaction."""
    age = parse_age(older_than) if not isinstance(older_than, dt.timedelta) else older_than
    check_keep(keep)
    cutoff = (now or schema.utcnow()) - age
    found = store.run(lambda s: candidates(s, cutoff, model), read_only=True)
    done = []
    for training_id, name, ended_at in found:

        def one(s: Session, tid: int = training_id) -> tuple[int, int]:
            return compact_training(s, store, tid, keep, dry_run=dry_run)

        before, after = store.run(one)
        if after < before:
            done.append(CompactedTraining(training_id, name, ended_at, before, after))
    return CompactReport(cutoff=cutoff, keep=keep, dry_run=dry_run, trainings=done)
