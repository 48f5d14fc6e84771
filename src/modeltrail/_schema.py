"""The ledger's tables, in one place.

Plain relational tables that people can query with SQL. Decisions worth knowing:

* Metric history rows stay narrow: the metric name lives once in ``metric_keys``
  and history rows carry its integer id.
* MySQL's DOUBLE rejects NaN and infinities, so every stored float is a pair:
  ``value`` (finite, NULL for NaN, +/-DBL_MAX for +/-inf so ordering still works)
  and ``kind`` (0 finite, 1 NaN, 2 +inf, 3 -inf, 4 -0.0: SQLite's and MySQL's doubles drop a
  zero's sign). ``modeltrail._values`` maps both ways.
* ``metric_summaries`` holds last/min/max per training and metric, kept current by
  the writer, so comparisons and leaderboards never scan the history.
* Indexed strings are at most 255 characters: utf8mb4 needs 4 bytes a character
  and InnoDB keys stop at 3072 bytes.
* Timestamps are timezone-aware UTC; MySQL keeps microseconds (DATETIME(6)).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from ._values import NAME_MAX, clean_text

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: The table Alembic keeps the schema revision in. Not ``alembic_version``, so a
#: team's own migrations in the same database never collide with ours.
VERSION_TABLE = "modeltrail_version"

SHORT = 255  # longest indexed string (see module docstring)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on the Python side on every backend.

    SQLite and MySQL have no zone-aware type, so UTC is stored naive there and the
    zone is re-attached on read; PostgreSQL gets ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: modeltrail stores timezone-aware UTC only")
        value = value.astimezone(dt.timezone.utc)
        if dialect.name != "postgresql":
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def from_timestamp(ts: float) -> dt.datetime:
    """A Unix time as an aware UTC datetime (spooled operations carry Unix times)."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


class JSONText(TypeDecorator[Any]):
    """JSON kept as TEXT on SQLite.

    A column declared ``JSON`` gets NUMERIC affinity in SQLite, which silently turns
    the stored text ``0.0`` into the integer ``0``; TEXT affinity keeps it verbatim.
    """

    impl = Text()
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


class ErrorText(TypeDecorator[str]):
    """The text of an error, kept the same way on every backend.

    It comes from an exception the user raised, so it cannot be refused: a NUL (PostgreSQL
    keeps none) is stored as ``\\x00`` and a lone surrogate (a non-UTF-8 file name) as its
    ``\\udcXX`` escape, rather than failing the write that records the training as failed.
    """

    impl = Text()
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return clean_text(value)


Json = JSON().with_variant(JSONText(), "sqlite")

# BIGINT everywhere but SQLite, where only INTEGER PRIMARY KEY is the rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Double = Float(precision=53).with_variant(mysql.DOUBLE(asdecimal=False), "mysql", "mariadb")
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: Json, Any: Json}


MYSQL_TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (Index(None, "framework", "model_type"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    model_type: Mapped[str | None] = mapped_column(String(64))
    framework: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ModelTagRow(Base):
    __tablename__ = "model_tags"
    __table_args__ = (UniqueConstraint("model_id", "key"), Index(None, "key", "value"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(String(SHORT), default="")


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("digest", "name"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    digest: Mapped[str] = mapped_column(String(64))
    n_rows: Mapped[int | None] = mapped_column(BigInteger)
    n_features: Mapped[int | None] = mapped_column(BigInteger)
    shape: Mapped[Any | None] = mapped_column(Json)
    features: Mapped[Any | None] = mapped_column(Json)
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrainingRow(Base):
    __tablename__ = "trainings"
    __table_args__ = (Index(None, "model_id", "started_at"), Index(None, "status"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: A client-made id: the spool replays by it, so a replay never duplicates a training.
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Double)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"), index=True)
    artifact_path: Mapped[str | None] = mapped_column(Text)
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    artifact_size: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(ErrorText())
    run_by: Mapped[str | None] = mapped_column(String(128))
    host: Mapped[str | None] = mapped_column(String(SHORT))
    git_commit: Mapped[str | None] = mapped_column(String(64), index=True)
    context: Mapped[Any | None] = mapped_column(Json)


class ParamRow(Base):
    __tablename__ = "params"
    __table_args__ = (UniqueConstraint("training_id", "key"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(SHORT))
    value: Mapped[Any | None] = mapped_column(Json)
    display: Mapped[str] = mapped_column(LongText)


class MetricKeyRow(Base):
    __tablename__ = "metric_keys"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(SHORT), unique=True)


class MetricPointRow(Base):
    """One logged point, stored in primary-key order (training, metric, step).

    InnoDB and SQLite (``WITHOUT ROWID``) keep rows in primary-key order, so a history is one range
    scan and an insert maintains one B-tree, not a row heap plus an index. ``seq`` is the point's
    ordinal in its metric's logging order (the summary's count when it was written): it keeps
    points logged twice at one step apart, in logging order. PostgreSQL keeps a heap plus this key.
    """

    __tablename__ = "metric_points"
    __table_args__ = (MYSQL_TABLE_ARGS | {"sqlite_with_rowid": False},)

    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"), primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("metric_keys.id"), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float | None] = mapped_column(Double)
    kind: Mapped[int] = mapped_column(SmallInteger, default=0)
    #: Seconds since the epoch, UTC: a float keeps history rows narrow and cheap to insert.
    ts: Mapped[float] = mapped_column(Double)


#: Points per row of ``metric_blocks``: a 1,000,000-point history is 3,907 of them.
BLOCK_POINTS = 256


class MetricBlockRow(Base):
    """The extremes of each run of ``BLOCK_POINTS`` points of one metric, in logging order (``seq // 256``).

    Kept by the writer with the summaries, so a long history is drawn from a few thousand block rows
    (every block's minimum and maximum, real points, so a spike is never hidden) instead of a scan of
    millions of points; ``db compact`` keeps them, so a compacted history still draws the same.
    A block whose points are all NaN has no minimum or maximum (NULL steps).
    """

    __tablename__ = "metric_blocks"
    __table_args__ = (MYSQL_TABLE_ARGS | {"sqlite_with_rowid": False},)

    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"), primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("metric_keys.id"), primary_key=True)
    block: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    min_step: Mapped[int | None] = mapped_column(BigInteger)
    min_value: Mapped[float | None] = mapped_column(Double)
    min_kind: Mapped[int] = mapped_column(SmallInteger)
    min_ts: Mapped[float | None] = mapped_column(Double)
    max_step: Mapped[int | None] = mapped_column(BigInteger)
    max_value: Mapped[float | None] = mapped_column(Double)
    max_kind: Mapped[int] = mapped_column(SmallInteger)
    max_ts: Mapped[float | None] = mapped_column(Double)


#: A summary's value columns: what rankings read, and (with ``updated_ts``) what the writer upserts.
SUMMARY_VALUE_COLUMNS = (
    "count", "last_step", "last_value", "last_kind", "min_step", "min_value", "min_kind", "max_step", "max_value",
    "max_kind",
)  # fmt: skip


class MetricSummaryRow(Base):
    """Last/min/max of one metric of one training, and the model of the version it became (NULL until then).

    ``model_id`` puts a model's versions side by side in the three (model, key, value) indexes, so the
    top of a leaderboard is a few index entries read in value order, however many versions the model
    has. The (key, value) indexes serve searches by a metric's range across all trainings.
    """

    __tablename__ = "metric_summaries"
    __table_args__ = (
        UniqueConstraint("training_id", "key_id"),
        Index(None, "key_id", "max_value"),
        Index(None, "key_id", "min_value"),
        Index(None, "model_id", "key_id", "max_value"),
        Index(None, "model_id", "key_id", "min_value"),
        Index(None, "model_id", "key_id", "last_value"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"))
    key_id: Mapped[int] = mapped_column(ForeignKey("metric_keys.id"))
    count: Mapped[int] = mapped_column(BigInteger)
    last_step: Mapped[int] = mapped_column(BigInteger)
    last_value: Mapped[float | None] = mapped_column(Double)
    last_kind: Mapped[int] = mapped_column(SmallInteger)
    min_step: Mapped[int | None] = mapped_column(BigInteger)
    min_value: Mapped[float | None] = mapped_column(Double)
    min_kind: Mapped[int] = mapped_column(SmallInteger)
    max_step: Mapped[int | None] = mapped_column(BigInteger)
    max_value: Mapped[float | None] = mapped_column(Double)
    max_kind: Mapped[int] = mapped_column(SmallInteger)
    updated_ts: Mapped[float] = mapped_column(Double)
    #: Set in the transaction that makes the training a version (or at insert, when it already is one).
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("model_id", "number"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    number: Mapped[int] = mapped_column(Integer)
    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id"), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"))
    artifact_path: Mapped[str | None] = mapped_column(Text)
    #: {"added": {k: v}, "removed": {k: v}, "changed": {k: {"old": v, "new": v}}} against the parent.
    param_diff: Mapped[Any | None] = mapped_column(Json)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DeploymentRow(Base):
    __tablename__ = "deployments"
    __table_args__ = (
        Index(None, "model_id", "environment", "deployed_at"),
        Index(None, "environment", "status"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    environment: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str | None] = mapped_column(Text)
    #: active, superseded, rolled_back or retired; only status and ended_at ever change.
    status: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16), default="deploy")
    deployed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None]
    deployed_by: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    rollback_of_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))


class AuditEventRow(Base):
    """Append-only: modeltrail inserts here and never updates or deletes."""

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "at"), Index(None, "entity", "entity_id"), Index(None, "action"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    db_user: Mapped[str | None] = mapped_column(String(128))
    os_user: Mapped[str | None] = mapped_column(String(128))
    host: Mapped[str | None] = mapped_column(String(SHORT))
    before: Mapped[Any | None] = mapped_column(Json)
    after: Mapped[Any | None] = mapped_column(Json)


class ProductionMetricRow(Base):
    """A metric measured while a deployment served (latency, live AUC...): compared with its training metrics."""

    __tablename__ = "production_metrics"
    __table_args__ = (Index(None, "deployment_id", "key_id", "measured_at"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    key_id: Mapped[int] = mapped_column(ForeignKey("metric_keys.id"))
    value: Mapped[float | None] = mapped_column(Double)
    kind: Mapped[int] = mapped_column(SmallInteger, default=0)
    measured_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class IngestedBatchRow(Base):
    """One row per metric batch written: a replayed batch (after an outage) is recognised and skipped."""

    __tablename__ = "ingested_batches"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    batch_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ingested_ts: Mapped[float] = mapped_column(Double)


class StageRow(Base):
    """One pipeline stage of a training (preprocess, train, evaluate...): its time, outcome and params."""

    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("training_id", "position"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime]
    duration_s: Mapped[float] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(ErrorText())
    params: Mapped[Any | None] = mapped_column(Json)


class EvaluationRow(Base):
    """An existing version scored on a named dataset (a test set, a new month of data) after its training.

    Not a training: it makes no version. ``dataset_name`` is always set; ``dataset_id`` only when the
    caller gave a fingerprinted :class:`~modeltrail.Dataset`. ``uuid`` makes imports idempotent.
    """

    __tablename__ = "evaluations"
    __table_args__ = (Index(None, "version_id", "dataset_name", "evaluated_at"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    dataset_name: Mapped[str] = mapped_column(String(NAME_MAX))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"), index=True)
    evaluated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    evaluated_by: Mapped[str | None] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text)


class EvaluationMetricRow(Base):
    """One metric of one evaluation; the float is stored as value + kind like every other metric."""

    __tablename__ = "evaluation_metrics"
    __table_args__ = (UniqueConstraint("evaluation_id", "key_id"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"))
    key_id: Mapped[int] = mapped_column(ForeignKey("metric_keys.id"))
    value: Mapped[float | None] = mapped_column(Double)
    kind: Mapped[int] = mapped_column(SmallInteger, default=0)


class MetricGoalRow(Base):
    """Which way is better for one metric of one model ("min" or "max"), declared once by a person.

    Rankings use it before guessing from the metric's name; ``metric`` is the name, not a key id,
    so a goal can be declared before the metric is first logged.
    """

    __tablename__ = "metric_goals"
    __table_args__ = (UniqueConstraint("model_id", "metric"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(SHORT))
    goal: Mapped[str] = mapped_column(String(3))
    set_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    set_by: Mapped[str | None] = mapped_column(String(128))


class ArtifactRow(Base):
    """One named file or directory a training logged (its model, a plot, a tokenizer), content-addressed.

    ``sha256`` is the file's digest, or for a directory the digest of its sorted listing (each name
    with its file's digest), so the same bytes logged twice are stored once under ``key``. ``state``
    says where the bytes are: ``stored`` (in the artifact store at ``store_url``/``key``), ``pending``
    (staged locally, waiting for an unreachable store) or ``local`` (no store: only ``source_path``).
    """

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("training_id", "name"), Index(None, "sha256"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(SHORT))
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    files: Mapped[int] = mapped_column(Integer, default=1)
    media_type: Mapped[str | None] = mapped_column(String(128))
    role: Mapped[str | None] = mapped_column(String(64))
    flavor: Mapped[str | None] = mapped_column(String(64))
    #: What loading needs beyond the flavor (a LightningModule's class path).
    flavor_info: Mapped[Any | None] = mapped_column(Json)
    source_path: Mapped[str | None] = mapped_column(Text)
    #: The store's URL without credentials; None for ``local``.
    store_url: Mapped[str | None] = mapped_column(Text)
    key: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    stored_at: Mapped[dt.datetime | None]


class VersionAliasRow(Base):
    """A name for one version of a model (``champion``), moved by a person; its history is in the audit trail."""

    __tablename__ = "version_aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(128))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    set_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    set_by: Mapped[str | None] = mapped_column(String(128))


class VersionTagRow(Base):
    """A tag put on a version after the fact (``validated=yes``); changes are audited."""

    __tablename__ = "version_tags"
    __table_args__ = (UniqueConstraint("version_id", "key"), Index(None, "key", "value"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(String(SHORT), default="")


class VersionNoteRow(Base):
    """A version's description, written after the fact (the version row itself never changes)."""

    __tablename__ = "version_notes"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(128))


class LedgerSettingRow(Base):
    """Settings every client of the ledger shares (``artifact_store``: where artifacts are stored)."""

    __tablename__ = "ledger_settings"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    set_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ServingInstanceRow(Base):
    """One ``modeltrail serve`` process: what it serves, where it listens, its heartbeat and how it ended.

    ``state`` is written ``serving`` at start and ``stopped`` or ``failed`` at the end. ``lost`` is never
    written: a reader computes it from ``heartbeat_at`` and ``heartbeat_s`` (see
    :mod:`modeltrail._read.serving`), so a server killed without a word reads lost, and one whose
    heartbeats come back after a database outage reads serving again. ``deployment_id`` and
    ``version_id`` follow the server when it switches to another deployment.
    """

    __tablename__ = "serving_instances"
    __table_args__ = (Index(None, "model_id", "environment", "started_at"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    environment: Mapped[str] = mapped_column(String(64))
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    host: Mapped[str] = mapped_column(String(SHORT))
    port: Mapped[int] = mapped_column(Integer)
    pid: Mapped[int] = mapped_column(Integer)
    heartbeat_s: Mapped[float] = mapped_column(Double)
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None]
    end_reason: Mapped[str | None] = mapped_column(Text)
