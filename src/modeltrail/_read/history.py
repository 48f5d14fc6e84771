"""Long metric histories: a downsampled curve that never hides a spike, and the full series page by page.

A history can hold millions of points; a chart needs a thousand. Reading them all to thin them
takes seconds, so the writer keeps ``metric_blocks``: the minimum and maximum point of every
``BLOCK_POINTS`` points in logging order. A long history is drawn from those rows (a few thousand
for a million points): consecutive blocks merge into buckets, and each bucket gives its lowest and
highest point, both real logged points, so an outlier always shows. The first and last points are
always included. A history short enough to read whole is bucketed the same way from its points.

The full series stays available by keyset pages (``after_step`` / ``limit``), each an index range
scan: ``metric_points`` is stored in (training, metric, step) order.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, func, or_, select, union_all
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._errors import ValidationError
from .._records import MetricPoint, RecordList
from .._values import decode_float

#: A point as read here: (step, value, unix time).
Point = tuple[int, float, float]

#: The largest page of raw points one call returns.
PAGE_MAX = 100_000


def check_points(max_points: Any, *, name: str = "max_points", zero_ok: bool = False) -> int:
    """A count of points: a positive int (or 0 where 0 means "all")."""
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < (0 if zero_ok else 1):
        what = "0 (all) or a positive integer" if zero_ok else "a positive integer"
        raise ValidationError(f"{name} must be {what}, got {max_points!r}", value=max_points)
    return max_points


def _decoded(rows: Iterable[Any]) -> list[Point]:
    return [(step, decode_float(value, kind), ts) for step, value, kind, ts in rows]


def _buckets(max_points: int) -> int:
    """How many buckets ``max_points`` allows: each gives up to two points, plus the first and last."""
    return max(1, (max_points - 2) // 2)


def _with_ends(first: Point | None, middle: list[Point], last: Point | None) -> list[Point]:
    out = [first] if first is not None else []
    out += [p for p in middle if p != first and p != last]
    if last is not None and last != first:
        out.append(last)
    return out


def _end(s: Session, training_id: int, key_id: int, *, last: bool) -> Point | None:
    mp = schema.MetricPointRow
    order = (mp.step.desc(), mp.seq.desc()) if last else (mp.step, mp.seq)
    row = s.execute(
        select(mp.step, mp.value, mp.kind, mp.ts)
        .where(mp.training_id == training_id, mp.key_id == key_id)
        .order_by(*order)
        .limit(1)
    ).first()
    return _decoded([row])[0] if row is not None else None


def _rank(value: Any, bucket: Any, tiebreak: Any, *, high: bool) -> Any:
    """Window rank of ``value`` in its bucket, ``lo`` (lowest first) or ``hi``; NULL (NaN) never wins."""
    order = (value.is_(None), value.desc() if high else value, tiebreak)
    return func.row_number().over(partition_by=bucket, order_by=order).label("hi" if high else "lo")


def downsample(s: Session, training_id: int, key_id: int, count: int, max_points: int) -> tuple[int, list[Point]]:
    """At most ``max_points`` points of a ``count``-point history, and about how many points each stands for.

    Whole when it fits. Else each bucket's lowest and highest point, picked in the database so only
    about ``max_points`` rows cross the wire (decoding rows is most of a client's cost): from
    ``metric_blocks`` (a few thousand rows for a million points) once its blocks give at least half
    the buckets asked for, from the points themselves, bucketed by their ordinal ``seq``, before that.
    """
    mp = schema.MetricPointRow
    where = (mp.training_id == training_id, mp.key_id == key_id)
    if count <= max_points:
        rows = s.execute(select(mp.step, mp.value, mp.kind, mp.ts).where(*where).order_by(mp.step, mp.seq))
        return 1, _decoded(rows)
    buckets = _buckets(max_points)
    per = math.ceil(count / buckets)
    middle: list[Point] = []
    blocks = math.ceil(count / schema.BLOCK_POINTS)
    if 2 * blocks < buckets:
        # Too few blocks for half the resolution asked: the points' extremes per bucket of ``seq``
        # (one grouped pass), then the points holding them (a second pass); ties keep the first logged.
        bucket = mp.seq // per
        extremes = (
            select(bucket.label("b"), func.min(mp.value).label("lo"), func.max(mp.value).label("hi"))
            .where(*where)
            .group_by(bucket)
            .subquery()
        )
        found = s.execute(
            select(mp.seq, mp.step, mp.value, mp.kind, mp.ts)
            .join(extremes, and_(extremes.c.b == bucket, or_(mp.value == extremes.c.lo, mp.value == extremes.c.hi)))
            .where(*where)
            .order_by(mp.seq)
        )
        kept: dict[tuple[int, float | None], Point] = {}
        for seq, step, value, kind, ts in found:
            kept.setdefault((seq // per, value), (step, decode_float(value, kind), ts))
        middle = list(kept.values())
    else:
        # Each bucket's lowest block minimum and highest block maximum; blocks of NaNs have NULL extremes.
        b = schema.MetricBlockRow
        per = max(1, math.ceil(math.ceil(count / schema.BLOCK_POINTS) / buckets))
        bucket = b.block // per
        sub = (
            select(b.min_step, b.min_value, b.min_kind, b.min_ts, b.max_step, b.max_value, b.max_kind, b.max_ts,
                   _rank(b.min_value, bucket, b.block, high=False), _rank(b.max_value, bucket, b.block, high=True))
            .where(b.training_id == training_id, b.key_id == key_id)
            .subquery()
        )  # fmt: skip
        lows = select(sub.c.min_step, sub.c.min_value, sub.c.min_kind, sub.c.min_ts).where(
            sub.c.lo == 1, sub.c.min_step.is_not(None)
        )
        highs = select(sub.c.max_step, sub.c.max_value, sub.c.max_kind, sub.c.max_ts).where(
            sub.c.hi == 1, sub.c.max_step.is_not(None)
        )
        middle = [(step, value, float(ts or 0.0)) for step, value, ts in _decoded(s.execute(union_all(lows, highs)))]
        per *= schema.BLOCK_POINTS
    first, last = _end(s, training_id, key_id, last=False), _end(s, training_id, key_id, last=True)
    return per, _with_ends(first, sorted(set(middle), key=lambda p: (p[0], p[2])), last)


def page(s: Session, training_id: int, key_id: int, *, after_step: int | None, limit: int | None) -> list[Point]:
    """Raw points in (step, logging) order with a step above ``after_step``, about ``limit`` of them (or all).

    A page never ends part-way through one step: points logged twice at its last step all come with
    it (so it may hold a few more than ``limit``), and the next page starts after that step.
    """
    mp = schema.MetricPointRow
    query = select(mp.step, mp.value, mp.kind, mp.ts, mp.seq).where(mp.training_id == training_id, mp.key_id == key_id)
    ordered = (query if after_step is None else query.where(mp.step > after_step)).order_by(mp.step, mp.seq)
    rows = list(s.execute(ordered if limit is None else ordered.limit(limit)).all())
    if limit is not None and rows and len(rows) == limit:
        step, seq = rows[-1].step, rows[-1].seq
        rows += s.execute(query.where(mp.step == step, mp.seq > seq).order_by(mp.seq)).all()
    return _decoded(r[:4] for r in rows)


def points_record(points: Iterable[Point]) -> RecordList[MetricPoint]:
    return RecordList(
        MetricPoint(step=step, value=value, timestamp=dt.datetime.fromtimestamp(ts, dt.timezone.utc))
        for step, value, ts in points
    )


def metric_history(
    s: Session,
    training_id: int,
    key: str,
    *,
    max_points: int | None = None,
    after_step: int | None = None,
    limit: int | None = None,
) -> RecordList[MetricPoint]:
    """One metric of one training: whole, downsampled to ``max_points``, or one page after ``after_step``."""
    if max_points is not None:
        check_points(max_points)
        if after_step is not None or limit is not None:
            raise ValidationError("max_points gives a downsampled curve; after_step/limit give pages: not both")
    if limit is not None:
        check_points(limit, name="limit")
        if limit > PAGE_MAX:
            raise ValidationError(f"limit is at most {PAGE_MAX:,}, got {limit!r}", value=limit)
    if after_step is not None and (isinstance(after_step, bool) or not isinstance(after_step, int)):
        raise ValidationError(f"after_step must be an integer step, got {after_step!r}", value=after_step)
    key_id = s.execute(select(schema.MetricKeyRow.id).where(schema.MetricKeyRow.name == key)).scalar_one_or_none()
    if key_id is None:
        return RecordList()
    if max_points is not None:
        ms = schema.MetricSummaryRow
        count = s.execute(
            select(ms.count).where(ms.training_id == training_id, ms.key_id == key_id)
        ).scalar_one_or_none()
        return points_record(downsample(s, training_id, key_id, count or 0, max_points)[1]) if count else RecordList()
    if after_step is not None and limit is None:
        limit = PAGE_MAX
    return points_record(page(s, training_id, key_id, after_step=after_step, limit=limit))
