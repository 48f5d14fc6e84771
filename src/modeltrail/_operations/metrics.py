"""The one write path of metric history: keys, points, per-metric summaries and batch claims.

The background writer (live logging and spool replay), the JSON import and the MLflow import
all write points and summaries through here, so an imported training reads exactly like a
logged one. Values are stored as (value, kind) pairs (:func:`modeltrail._values.encode_float`)
because MySQL's DOUBLE takes neither NaN nor the infinities.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._schema import BLOCK_POINTS
from .._store import upsert
from .._values import NAN, decode_float, encode_float

#: One point as stored: (training_id, key_id, step, seq, value, kind, ts); ``seq`` is the point's
#: ordinal in its metric's logging order (the summary's count before it), the key's tiebreak.
PointRow = tuple[int, int, int, int, float | None, int, float]

SUMMARY_COLUMNS = [*schema.SUMMARY_VALUE_COLUMNS, "updated_ts"]
_BLOCKS = schema.MetricBlockRow.__table__
_BLOCK_KEYS = ["training_id", "key_id", "block"]
_BLOCK_COLUMNS = [c.name for c in _BLOCKS.c if c.name not in _BLOCK_KEYS]

_CHUNK = 10_000
_MYSQL_ROWS = 5_000
_COLUMNS = "training_id, key_id, step, seq, value, kind, ts"
_MYSQL_INSERT = f"INSERT INTO metric_points ({_COLUMNS}) VALUES "
_MYSQL_ROW = "(%d,%d,%d,%d,%r,%d,%r)"
_CSV_ROW = "%d,%d,%d,%d,%r,%d,%r"
#: Batches from this many points go by LOAD DATA LOCAL INFILE where the connection allows it.
_LOAD_MIN = 2_000
#: "The used command is not allowed" (MariaDB, MySQL 5.7) and "loading local data is disabled" (MySQL 8).
_LOAD_REFUSALS = {1148, 3948, 2068}
#: (host, port) of servers that refused LOAD DATA LOCAL: not asked again by this process.
_LOAD_REFUSED: set[tuple[str | None, int | None]] = set()


class Block:
    """The extremes of one block of ``BLOCK_POINTS`` points in logging order (NaN never wins)."""

    __slots__ = ("count", "max", "max_step", "max_ts", "min", "min_step", "min_ts")

    def __init__(self) -> None:
        self.count = 0
        self.min: float | None = None
        self.min_step: int | None = None
        self.min_ts: float | None = None
        self.max: float | None = None
        self.max_step: int | None = None
        self.max_ts: float | None = None

    def copy(self) -> Block:
        other = Block()
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        return other

    def add(self, step: int, value: float, ts: float) -> None:
        self.count += 1
        if value == value:
            if self.min is None or value < self.min:
                self.min, self.min_step, self.min_ts = value, step, ts
            if self.max is None or value > self.max:
                self.max, self.max_step, self.max_ts = value, step, ts

    def row(self, training_id: int, key_id: int, block: int) -> dict[str, Any]:
        min_value, min_kind = encode_float(self.min) if self.min is not None else (None, NAN)
        max_value, max_kind = encode_float(self.max) if self.max is not None else (None, NAN)
        return {
            "training_id": training_id, "key_id": key_id, "block": block, "count": self.count,
            "min_step": self.min_step, "min_value": min_value, "min_kind": min_kind, "min_ts": self.min_ts,
            "max_step": self.max_step, "max_value": max_value, "max_kind": max_kind, "max_ts": self.max_ts,
        }  # fmt: skip

    @classmethod
    def from_row(cls, row: Any) -> Block:
        b = cls()
        b.count = row.count
        if row.min_step is not None:
            b.min, b.min_step, b.min_ts = decode_float(row.min_value, row.min_kind), row.min_step, row.min_ts
        if row.max_step is not None:
            b.max, b.max_step, b.max_ts = decode_float(row.max_value, row.max_kind), row.max_step, row.max_ts
        return b


class Summary:
    """Running last/min/max of one metric of one training (NaN never wins min or max).

    It also keeps the open block of the history (``metric_blocks``) and which blocks changed since
    it was copied, so the writer upserts those few rows with the summary; and whether its row
    exists, so only a new row looks up the model of the version its training became.
    """

    __slots__ = (
        "block", "changed", "count", "last", "last_step", "max", "max_step", "min", "min_step", "model_id", "stored",
    )  # fmt: skip

    def __init__(self) -> None:
        self.count = 0
        self.last_step = -1
        self.last = 0.0
        self.min: float | None = None
        self.min_step: int | None = None
        self.max: float | None = None
        self.max_step: int | None = None
        #: The block the next point goes into (None: a fresh one).
        self.block: Block | None = None
        #: Block number -> block, those changed since this copy was made.
        self.changed: dict[int, Block] = {}
        #: The model of the version the training became, written when the row is inserted (never updated here:
        #: making the version sets it on rows that exist).
        self.model_id: int | None = None
        #: Whether the row exists: read from it, or saved by :func:`save_summaries`.
        self.stored = False

    def copy(self) -> Summary:
        other = Summary()
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        other.block = self.block.copy() if self.block is not None else None
        other.changed = {}
        return other

    def add(self, step: int, value: float, ts: float = 0.0) -> None:
        number, at = divmod(self.count, BLOCK_POINTS)
        block = self.block
        if block is None or at == 0:
            block = self.block = Block()
        block.add(step, value, ts)
        self.changed[number] = block
        self.count += 1
        if step >= self.last_step:
            self.last_step, self.last = step, value
        if value == value:
            if self.min is None or value < self.min:
                self.min, self.min_step = value, step
            if self.max is None or value > self.max:
                self.max, self.max_step = value, step

    def row(self, training_id: int, key_id: int, now: float) -> dict[str, Any]:
        last_value, last_kind = encode_float(self.last)
        min_value, min_kind = encode_float(self.min) if self.min is not None else (None, NAN)
        max_value, max_kind = encode_float(self.max) if self.max is not None else (None, NAN)
        return {
            "training_id": training_id, "key_id": key_id, "count": self.count,
            "last_step": self.last_step, "last_value": last_value, "last_kind": last_kind,
            "min_step": self.min_step, "min_value": min_value, "min_kind": min_kind,
            "max_step": self.max_step, "max_value": max_value, "max_kind": max_kind,
            "updated_ts": now, "model_id": self.model_id,
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
        s.model_id, s.stored = row.model_id, True
        return s


def metric_key_ids(s: Session, names: Iterable[str]) -> dict[str, int]:
    """Ids of metric keys, made on first use."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    keys = schema.MetricKeyRow.__table__
    upsert(s, keys, [{"name": n} for n in wanted], keys=["name"])
    return {n: i for n, i in s.execute(select(keys.c.name, keys.c.id).where(keys.c.name.in_(wanted)))}


def claim_batch(s: Session | Any, batch_id: str) -> bool:
    """Record ``batch_id`` as ingested in the current transaction; False if it already was."""
    batch = schema.IngestedBatchRow
    if s.execute(select(batch.batch_id).where(batch.batch_id == batch_id)).first() is not None:
        return False
    s.execute(insert(batch).values(batch_id=batch_id, ingested_ts=schema.utcnow().timestamp()))
    return True


def any_claimed(s: Session | Any, batch_ids: Sequence[str]) -> bool:
    """Whether any of ``batch_ids`` was ingested already."""
    batch = schema.IngestedBatchRow
    return s.execute(select(batch.batch_id).where(batch.batch_id.in_(list(batch_ids))).limit(1)).first() is not None


def insert_points(s: Session, rows: Sequence[PointRow]) -> None:
    """Insert stored points as fast as the driver allows: raw ``executemany``, bypassing the ORM."""
    if not rows:
        return
    conn = s.connection()
    if conn.dialect.name in ("mysql", "mariadb"):
        if len(rows) >= _LOAD_MIN and _load_data(conn, rows):
            return
        # PyMySQL escapes every value in Python, most of the writer's time; these are numbers
        # only, so they are formatted here (%d takes only ints, %r of a float round-trips
        # exactly) into multi-row INSERTs of a few hundred kB each.
        for start in range(0, len(rows), _MYSQL_ROWS):
            conn.exec_driver_sql(_MYSQL_INSERT + ",".join(map(_mysql_row, rows[start : start + _MYSQL_ROWS])))
        return
    sql = _points_sql(conn.dialect.paramstyle)
    for start in range(0, len(rows), _CHUNK):
        conn.exec_driver_sql(sql, list(rows[start : start + _CHUNK]))


def _load_data(conn: Connection, rows: Sequence[PointRow]) -> bool:
    """``LOAD DATA LOCAL INFILE`` of a large batch, the server's cheapest way in; False when it cannot be used.

    Only on a connection opened with ``local_infile`` (``?local_infile=1`` in a MySQL/MariaDB URL). A
    server that refuses it (``local_infile=OFF``) is remembered, and the batch goes as INSERTs in the
    same transaction (a refused statement changes nothing).
    """
    raw = conn.connection.dbapi_connection
    server = (conn.engine.url.host, conn.engine.url.port)
    if not getattr(raw, "_local_infile", False) or server in _LOAD_REFUSED:
        return False
    with tempfile.NamedTemporaryFile("w", prefix="modeltrail-points-", suffix=".csv") as f:
        f.write("\n".join(map(_csv_row, rows)))
        f.flush()
        try:
            conn.exec_driver_sql(
                f"LOAD DATA LOCAL INFILE '{f.name}' INTO TABLE metric_points FIELDS TERMINATED BY ',' ({_COLUMNS})"
            )
        except DBAPIError as e:
            if getattr(e.orig, "args", (None,))[0] not in _LOAD_REFUSALS:
                raise
            _LOAD_REFUSED.add(server)
            return False
    return True


def _csv_row(row: tuple[Any, ...]) -> str:
    if row[4] is None:  # NaN: NULL with its kind
        return f"{row[0]:d},{row[1]:d},{row[2]:d},{row[3]:d},\\N,{row[5]:d},{float(row[6])!r}"
    return _CSV_ROW % row


@lru_cache(maxsize=4)
def _points_sql(paramstyle: str) -> str:
    marks = ", ".join(["?" if paramstyle == "qmark" else "%s"] * 7)
    return f"INSERT INTO metric_points ({_COLUMNS}) VALUES ({marks})"


def _mysql_row(row: tuple[Any, ...]) -> str:
    if row[4] is None:  # NaN: stored as NULL with its kind
        return f"({row[0]:d},{row[1]:d},{row[2]:d},{row[3]:d},NULL,{row[5]:d},{float(row[6])!r})"
    return _MYSQL_ROW % row


def save_summaries(
    s: Session, summaries: Mapping[tuple[int, int], Summary], now: float | Mapping[tuple[int, int], float]
) -> None:
    """Upsert the summaries of (training id, key id) pairs, in key order (a stable lock order).

    ``now`` stamps them all, or each pair its own time (an import keeps its last point's). A new
    row takes ``model_id`` from its training's version, if it already is one (points that arrive
    after the finish, an import that makes the version first); an update never changes it.
    """
    stamps = now if isinstance(now, Mapping) else dict.fromkeys(summaries, now)
    ordered = sorted(summaries.items())
    new = sorted({p[0] for p, summary in ordered if not summary.stored})
    if new:
        v = schema.VersionRow
        model_of = {t: m for t, m in s.execute(select(v.training_id, v.model_id).where(v.training_id.in_(new)))}
        for p, summary in ordered:
            if not summary.stored:
                summary.model_id = model_of.get(p[0])
    upsert(
        s,
        schema.MetricSummaryRow.__table__,
        [summary.row(p[0], p[1], stamps[p]) for p, summary in ordered],
        keys=["training_id", "key_id"],
        update=SUMMARY_COLUMNS,
    )
    for summary in summaries.values():
        summary.stored = True
    blocks = [b.row(p[0], p[1], n) for p, summary in ordered for n, b in sorted(summary.changed.items())]
    for start in range(0, len(blocks), _CHUNK):
        upsert(s, _BLOCKS, blocks[start : start + _CHUNK], keys=_BLOCK_KEYS, update=_BLOCK_COLUMNS)


def load_summaries(s: Session, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], Summary]:
    """Summaries already stored for ``pairs`` (a training resumed or replayed), empty ones for the rest."""
    table = schema.MetricSummaryRow.__table__
    found = {p: Summary() for p in pairs}
    query = select(table).where(tuple_(table.c.training_id, table.c.key_id).in_(sorted(pairs)))
    for row in s.execute(query):
        found[(row.training_id, row.key_id)] = Summary.from_row(row)
    # A partly filled last block carries on: its extremes so far come back with it.
    open_blocks = {(*p, (m.count - 1) // BLOCK_POINTS): m for p, m in found.items() if m.count % BLOCK_POINTS}
    if open_blocks:
        b = _BLOCKS
        rows = s.execute(select(b).where(tuple_(*(b.c[k] for k in _BLOCK_KEYS)).in_(sorted(open_blocks))))
        for row in rows:
            open_blocks[(row.training_id, row.key_id, row.block)].block = Block.from_row(row)
    return found


def insert_metric_history(s: Session, training_id: int, metrics: Mapping[str, list[tuple[int, float, float]]]) -> int:
    """Insert a new training's whole history, ``{key: [(step, value, unix time), ...]}`` in logging order.

    Returns the number of points. Summaries are computed as the writer keeps them, each stamped
    with the time of its key's last point.
    """
    key_ids = metric_key_ids(s, [k for k, points in metrics.items() if points])
    rows: list[PointRow] = []
    summaries: dict[tuple[int, int], Summary] = {}
    stamps: dict[tuple[int, int], float] = {}
    for key, points in sorted(metrics.items()):
        if not points:
            continue
        pair = (training_id, key_ids[key])
        summary = summaries[pair] = Summary()
        for step, value, ts in points:
            stored, kind = encode_float(value)
            rows.append((training_id, pair[1], step, summary.count, stored, kind, ts))
            summary.add(step, value, ts)
        stamps[pair] = max(p[2] for p in points)
    insert_points(s, rows)
    save_summaries(s, summaries, stamps)
    return len(rows)
