"""The entry point users hold: ``Tracker`` opens a ledger, starts trainings and answers questions."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._config import database_of, mask_password, require_existing, resolve_uri
from ._dataset import Dataset
from ._errors import ConfigurationError, NotFoundError, StorageUnavailableError, install_hint
from ._operations import compact as compact_ops
from ._operations import deployments as deployment_ops
from ._operations import evaluations as evaluation_ops
from ._operations.compact import CompactReport
from ._read import audit as audit_reads
from ._read import deployments as deployment_reads
from ._read import evaluations as evaluation_reads
from ._read import history, queries, ranking
from ._read import lineage as lineage_mod
from ._records import (
    AuditRecord,
    Comparison,
    CurvePoint,
    DatasetUse,
    DeploymentRecord,
    Difference,
    EvaluationRecord,
    LeaderboardEntry,
    Lineage,
    MetricGoalRecord,
    MetricPoint,
    ModelDetails,
    ModelRecord,
    ProductionComparison,
    ProductionMetricRecord,
    RecordList,
    Reproduction,
    SpoolReplay,
    TrainingRecord,
    VersionMetric,
    VersionRecord,
)
from ._store import Store, get_store, release
from ._tracker_models import ModelRegistry
from ._tracker_serving import ServingLedger
from ._tracker_views import LedgerViews
from ._training import Training
from ._writer import flush_writer, writer_for

#: Points per version a plot draws: a long history is downsampled to this (extremes kept).
PLOT_POINTS = 2000


class Tracker(ModelRegistry, LedgerViews, ServingLedger):
    """A handle on one ledger (database). Cheap to make; pickles as its URL only.

    ``uri`` is any SQLAlchemy URL: ``sqlite:///path.db`` (the default, from
    ``MODELTRAIL_URI`` or ``./modeltrail.db``), ``mysql+pymysql://user:pw@host/db``,
    ``postgresql+psycopg://user@host/db``.

    ``artifacts`` is where logged files are stored (any fsspec URL; see ``_tracker_models``),
    ``artifact_options`` the fsspec options for it (``{"client_kwargs": {"endpoint_url": ...}}``),
    ``cache_dir`` where downloaded models are cached (``MODELTRAIL_CACHE_DIR``, else the user's cache).
    """

    def __init__(
        self,
        uri: str | None = None,
        *,
        create: bool = True,
        spool: bool = True,
        spool_dir: str | os.PathLike[str] | None = None,
        artifacts: str | os.PathLike[str] | None = None,
        artifact_options: Mapping[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.uri = resolve_uri(uri)
        self._init_artifacts(artifacts, artifact_options, cache_dir)
        self._create = create
        self._spool = spool
        self._spool_dir = os.fspath(spool_dir) if spool_dir is not None else None
        self._store: Store | None = None
        # Connect now, so a bad URL or an old schema fails here. An unreachable server is an
        # error only with spool=False; otherwise trainings are spooled locally until it is back,
        # and the writer starts now to say so once.
        if self.store.unavailable is not None:
            writer_for(self.store)

    def __repr__(self) -> str:
        return f"Tracker({mask_password(self.uri)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "uri": self.uri, "create": self._create, "spool": self._spool, "spool_dir": self._spool_dir,
            "artifacts": self._artifacts_url, "artifact_options": self._artifact_options, "cache_dir": self._cache_dir,
        }  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.uri = state["uri"]
        self._create = state["create"]
        self._spool = state.get("spool", True)
        self._spool_dir = state.get("spool_dir")
        self._store = None
        self._artifacts_url = state.get("artifacts")
        self._artifact_options = state.get("artifact_options") or {}
        self._cache_dir = state.get("cache_dir")
        self._artifact_store = None
        self._store_resolved = False

    @property
    def store(self) -> Store:
        if self._store is None:
            try:
                store = get_store(self.uri, create=self._create, offline_ok=self._spool, spool_dir=self._spool_dir)
            except ConfigurationError as e:  # a URL whose driver is an extra not installed: say which
                hint = install_hint(e)
                if hint is None or hint in str(e):
                    raise
                raise ConfigurationError(f"{e}: {hint}", value=e.value) from e
            self._store = store
        return self._store

    # ---------------------------------------------------------------- writing
    def training(
        self,
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
    ) -> Training:
        """Start a training of ``model`` (created on first use). Use it as a context manager.

        ``system_metrics``: sample CPU, memory, disk, network (and GPU) into ``system/...`` metrics: True, an
        interval in seconds, or None for ``MODELTRAIL_SYSTEM_METRICS`` (see ``modeltrail._system``).
        """
        return Training(
            self,
            model,
            framework=framework,
            model_type=model_type,
            description=description,
            params=params,
            dataset=dataset,
            seeds=seeds,
            tags=tags,
            system_metrics=system_metrics,
        )

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything logged through this ledger is in the database or the durable spool."""
        writer_for(self.store).flush(timeout)

    def sync(self, timeout: float | None = None) -> int:
        """Replay spooled work (this process's and that of ended processes) now; returns entries still waiting."""
        writer = writer_for(self.store)
        writer.artifact_store = writer.artifact_store or self.artifact_store  # staged uploads go there
        writer.flush(timeout)
        return int(writer.sync(timeout))

    def close(self) -> None:
        """Flush what this Tracker logged; the last Tracker of a database in this process also stops its
        writer (joined) and releases its connections. Others sharing the database keep logging."""
        store = self._store
        if store is None:
            return
        self._store = None
        flush_writer(store)
        release(store)  # the last holder's release closes the store, whose hook stops the writer

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *_: object) -> None:
        """Leaving ``with modeltrail.Tracker(...) as tracker:`` flushes, stops the writer and joins it."""
        self.close()

    # ---------------------------------------------------------------- reading
    def model(self, name_or_id: str | int) -> ModelRecord:
        with self.store.transaction(read_only=True) as s:
            return queries.model_records(s, [queries.resolve_model(s, name_or_id)])[0]

    def models(
        self,
        *,
        framework: str | None = None,
        model_type: str | None = None,
        tag: str | None = None,
        name: str | None = None,
    ) -> RecordList[ModelRecord]:
        """Models by framework, type, tag (``key`` or ``key=value``) and a substring of the name."""
        with self.store.transaction(read_only=True) as s:
            return queries.find_models(s, framework=framework, model_type=model_type, tag=tag, name_like=name)

    def trainings(
        self,
        model: str | int | None = None,
        *,
        status: str | None = None,
        where: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> RecordList[TrainingRecord]:
        """Trainings of ``model`` (or of every model), failed, running and unversioned ones included.

        ``where`` filters like MLflow's ``search_runs``: ``"params.max_depth >= 8 and metrics.val_auc > 0.9
        and status = 'finished'"`` (params, metrics' last values or ``.best/.min/.max``, model tags,
        attributes ``status model version started_at duration ...``; ``= != < <= > >= like in is null``,
        ``and or not`` and parentheses). ``order_by``: ``"metrics.val_auc desc, started_at"``.
        A filter that does not parse is a ValidationError naming the token and its column.
        """
        with self.store.transaction(read_only=True) as s:
            return queries.trainings(s, model, status=status, where=where, order_by=order_by, limit=limit)

    def get_training(self, training_id: int) -> TrainingRecord:
        with self.store.transaction(read_only=True) as s:
            return queries.training(s, training_id)

    def versions(self, model: str | int) -> RecordList[VersionRecord]:
        with self.store.transaction(read_only=True) as s:
            return queries.versions(s, model)

    def metric_history(
        self,
        training_or_version: Any,
        key: str,
        *,
        version: int | None = None,
        max_points: int | None = None,
        after_step: int | None = None,
        limit: int | None = None,
    ) -> RecordList[MetricPoint]:
        """Metric ``key`` of a training, a version record, or a model's version (latest by default).

        Every point by default; ``max_points=1000`` a downsampled curve (each bucket's lowest and highest
        point, the first and last, so a spike always shows) read in milliseconds however long the
        history; ``after_step=``/``limit=`` one page of raw points in step order (next page: after the
        last step returned).
        """
        with self.store.transaction(read_only=True) as s:
            training_id = queries.resolve_training_id(s, training_or_version, version=version)
            return history.metric_history(
                s, training_id, key, max_points=max_points, after_step=after_step, limit=limit
            )

    # ------------------------------------------------------------- registry
    def show(self, model: str | int) -> ModelDetails:
        """A model with each version, its training (params, metrics, dataset, artifact) and where it serves."""
        with self.store.transaction(read_only=True) as s:
            return queries.model_details(s, model)

    def compare(self, model: str | int, a: int, b: int, *, modes: Mapping[str, str] | None = None) -> Comparison:
        """What changed from version ``a`` to ``b``: params, shared metrics (final and best), dataset, duration, code.

        ``modes`` says per metric whether "max" or "min" is best; by default losses and errors are "min".
        """
        with self.store.transaction(read_only=True) as s:
            return ranking.compare(s, model, a, b, modes=modes)

    def leaderboard(
        self,
        model: str | int,
        metric: str,
        *,
        mode: str | None = None,
        by: str = "best",
        limit: int | None = None,
        dataset: str | None = None,
    ) -> RecordList[LeaderboardEntry]:
        """Versions ranked by ``metric``: ``by="best"`` uses each training's best value over its whole history.

        With ``dataset``, versions are ranked by ``metric`` of their latest evaluation on that dataset.
        Without ``mode`` ("max" or "min"), the goal declared with :meth:`set_metric_goal` decides, else
        the metric's name (``val_loss``: min, ``val_auc``: max); a name that says neither is a ValidationError.
        """
        with self.store.transaction(read_only=True) as s:
            return ranking.leaderboard(s, model, metric, mode=mode, by=by, limit=limit, dataset=dataset)

    def best_version(
        self, model: str | int, *, metric: str, mode: str | None = None, by: str = "best", dataset: str | None = None
    ) -> LeaderboardEntry:
        """The top of :meth:`leaderboard` (same rule for ``mode``); NotFoundError when no version logged ``metric``."""
        with self.store.transaction(read_only=True) as s:
            top = ranking.leaderboard(s, model, metric, mode=mode, by=by, limit=1, dataset=dataset)
        if not top:
            raise NotFoundError(f"no version of model {model!r} logged metric {metric!r}", value=metric)
        return top[0]

    def metric_by_version(self, model: str | int, metric: str, *, mode: str | None = None) -> RecordList[VersionMetric]:
        """``metric``'s final and best value in each version, with where each version serves now."""
        with self.store.transaction(read_only=True) as s:
            return ranking.metric_by_version(s, model, metric, mode=mode)

    def set_metric_goal(
        self, model: str | int, metric: str, goal: str, *, set_by: str | None = None
    ) -> MetricGoalRecord:
        """Declare once that ``goal`` ("max" or "min") is better for ``metric`` of ``model`` (audited).

        Rankings (:meth:`leaderboard`, :meth:`best_version`), comparisons and histories then use it
        instead of inferring the direction from the metric's name.
        """
        from ._operations.metric_goals import set_metric_goal

        store = self.store
        return store.run(lambda s: set_metric_goal(s, store, model, metric, goal, set_by=set_by))

    def compact(
        self, *, older_than: str | dt.timedelta, keep: int = 1000, model: str | int | None = None, dry_run: bool = False
    ) -> CompactReport:
        """Thin the raw points of trainings that ended more than ``older_than`` (``"90d"``) ago.

        Each metric keeps at most ``keep`` raw points (first, last, each bucket's extremes); summaries and
        the downsampled curve stay exactly as they were; one audit event per training compacted. Running
        trainings are never touched; ``dry_run`` only counts.
        """
        self.flush()
        return compact_ops.compact(self.store, older_than=older_than, keep=keep, model=model, dry_run=dry_run)

    def metric_goals(self, model: str | int) -> RecordList[MetricGoalRecord]:
        """The goals declared for ``model``'s metrics, by metric name."""
        with self.store.transaction(read_only=True) as s:
            return ranking.goal_records(s, model)

    def metric_curves(
        self,
        model: str | int,
        metric: str,
        *,
        versions: Sequence[int] | None = None,
        max_points: int | None = None,
    ) -> RecordList[CurvePoint]:
        """Every point of ``metric`` in every version (or ``versions``): one table, one curve per version.

        ``max_points`` downsamples each version's curve (see :meth:`metric_history`).
        """
        with self.store.transaction(read_only=True) as s:
            return queries.metric_curves(s, model, metric, versions=versions, max_points=max_points)

    def version_history(
        self, model: str | int, version: int | None = None, *, metrics: Sequence[str] | None = None
    ) -> RecordList[CurvePoint]:
        """Every metric point of one version (the latest by default), optionally only ``metrics``."""
        with self.store.transaction(read_only=True) as s:
            return queries.version_history(s, model, version, metrics=metrics)

    # ---------------------------------------------------------- evaluations
    def evaluate(
        self,
        model: str | int,
        *,
        version: int | None = None,
        dataset: Dataset | str,
        metrics: Mapping[str, Any],
        evaluated_by: str | None = None,
        description: str | None = None,
        evaluated_at: dt.datetime | None = None,
    ) -> EvaluationRecord:
        """Record ``metrics`` of an existing version (the latest by default) on ``dataset``; makes no version.

        ``dataset`` is a :class:`Dataset` (its digest joins the lineage) or a name ("test-2026-12").
        Comparisons show evaluation metrics and ``leaderboard(..., dataset=...)`` ranks by them.
        """
        store = self.store
        return store.run(
            lambda s: evaluation_ops.evaluate(
                s, store, model, version, dataset=dataset, metrics=metrics, evaluated_by=evaluated_by,
                description=description, evaluated_at=evaluated_at,
            )
        )  # fmt: skip

    def evaluations(
        self, model: str | int, *, version: int | None = None, dataset: str | None = None
    ) -> RecordList[EvaluationRecord]:
        """Evaluations of a model's versions (of one version, on one dataset), by version then time."""
        with self.store.transaction(read_only=True) as s:
            return evaluation_reads.evaluations(s, model, version=version, dataset=dataset)

    # ---------------------------------------------------------- traceability
    def lineage(self, model: str | int, version: int | None = None) -> Lineage:
        """dataset -> training (code commit, environment, params) -> version -> deployments, for one version."""
        with self.store.transaction(read_only=True) as s:
            return lineage_mod.lineage(s, model, version)

    def trained_on(self, digest: str) -> RecordList[DatasetUse]:
        """Every version, of any model, trained on the dataset with this digest (or a prefix of it)."""
        with self.store.transaction(read_only=True) as s:
            return lineage_mod.trained_on(s, digest)

    def serving_trained_on(self, digest: str) -> RecordList[DeploymentRecord]:
        """The active deployments (environment, model, version) of versions trained on this dataset digest."""
        with self.store.transaction(read_only=True) as s:
            return lineage_mod.serving_trained_on(s, digest)

    def reproduce(self, model: str | int, version: int | None = None) -> Reproduction:
        """What retraining a version needs: git commit and dirty flag, command, packages, params, seeds, data."""
        with self.store.transaction(read_only=True) as s:
            return lineage_mod.reproduction(s, model, version)

    def reproduce_check(
        self, model: str | int, version: int | None = None, *, dataset_digest: str | None = None
    ) -> list[Difference]:
        """Every difference between what ``version`` was trained with and this environment (empty: none)."""
        return lineage_mod.differences(self.reproduce(model, version), dataset_digest=dataset_digest)

    # ---------------------------------------------------------- exchange
    def export(self, model: str | int, *, version: int | None = None) -> list[dict[str, Any]]:
        """One document per version (or for ``version``) following the shipped JSON Schema; see ``exchange``."""
        from ._exchange.export import export_documents

        return list(export_documents(self.store, model, version=version))

    def import_documents(
        self,
        documents: Sequence[Mapping[str, Any]],
        *,
        deployments: bool = True,
        source: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Load exported documents into this ledger, all or nothing; versions keep their numbers.

        ``on_progress(done, total)`` is called after each document."""
        from ._exchange.imports import import_documents

        done = itertools.count(1)
        advance = (lambda: on_progress(next(done), len(documents))) if on_progress is not None else None
        return dict(
            import_documents(self.store, documents, deployments=deployments, source=source, on_document=advance)
        )

    def import_mlflow(
        self, url: str, *, batch_size: int = 100, on_progress: Callable[[int, int], None] | None = None
    ) -> Any:
        """Import a MLflow SQL tracking store (experiments, runs, registered models), ``on_progress(done, total)``."""
        from ._exchange.mlflow import import_mlflow

        return import_mlflow(self.store, url, batch_size=batch_size, on_progress=on_progress)

    # ---------------------------------------------------------- deployments
    def deploy(
        self,
        model: str | int,
        version: int,
        environment: str,
        *,
        endpoint: str | None = None,
        reason: str | None = None,
        deployed_by: str | None = None,
        expect_version: int | None = None,
        request_id: str | None = None,
    ) -> DeploymentRecord:
        """Make ``version`` what serves ``environment``; the deployment it replaces is marked superseded.

        ``expect_version`` and ``request_id`` make a retry safe (see :meth:`rollback`).
        """
        store = self.store
        guard = deployment_ops.Guard(expect_version, request_id)
        return store.run(
            lambda s: deployment_ops.deploy(
                s, store, model, version, environment, endpoint=endpoint, reason=reason, deployed_by=deployed_by,
                guard=guard,
            )
        )  # fmt: skip

    def rollback(
        self,
        model: str | int,
        environment: str,
        *,
        reason: str | None = None,
        deployed_by: str | None = None,
        expect_version: int | None = None,
        request_id: str | None = None,
    ) -> DeploymentRecord:
        """Return ``environment`` to the version active before the current one; repeated calls walk further back.

        Because each call walks back one more step, a blind retry after a lost commit acknowledgement
        could roll back twice. ``expect_version`` is the version you believe serves now: if another
        one does, :class:`~modeltrail.ConflictError` and nothing changes. ``request_id`` (any string
        you make once per intended change, e.g. a uuid) is kept with the change's audit event; a
        call with a request id that already made its change returns that change and writes nothing.
        Send both, unchanged, on every retry.
        """
        store = self.store
        guard = deployment_ops.Guard(expect_version, request_id)
        return store.run(
            lambda s: deployment_ops.rollback(
                s, store, model, environment, reason=reason, deployed_by=deployed_by, guard=guard
            )
        )

    def undeploy(
        self,
        model: str | int,
        environment: str,
        *,
        version: int | None = None,
        reason: str | None = None,
        deployed_by: str | None = None,
        expect_version: int | None = None,
        request_id: str | None = None,
    ) -> DeploymentRecord:
        """Retire what serves ``environment`` (refused unless it is ``version``, when given).

        ``expect_version`` is ``version``'s twin for retries, and ``request_id`` as in :meth:`rollback`.
        """
        store = self.store
        guard = deployment_ops.Guard(expect_version, request_id)
        return store.run(
            lambda s: deployment_ops.undeploy(
                s, store, model, environment, version=version, reason=reason, deployed_by=deployed_by, guard=guard
            )
        )

    def deployment(
        self, model: str | int, environment: str, *, at: dt.datetime | dt.date | None = None
    ) -> DeploymentRecord | None:
        """What serves ``environment`` now, or at moment ``at`` (a date means the end of that day, UTC)."""
        with self.store.transaction(read_only=True) as s:
            if at is None:
                return deployment_reads.current_deployment(s, model, environment)
            return deployment_reads.deployment_at(s, model, environment, at)

    def deployments(
        self,
        model: str | int | None = None,
        *,
        environment: str | None = None,
        version: int | None = None,
        status: str | None = None,
    ) -> RecordList[DeploymentRecord]:
        """The full timeline per environment (oldest first): status, action, who, when, why."""
        with self.store.transaction(read_only=True) as s:
            return deployment_reads.deployments(s, model, environment=environment, version=version, status=status)

    def environments(self, model: str | int, version: int) -> list[str]:
        """The environments where ``version`` serves now."""
        with self.store.transaction(read_only=True) as s:
            return deployment_reads.environments_of(s, model, version)

    def log_production_metrics(
        self,
        model: str | int,
        environment: str,
        metrics: Mapping[str, Any],
        *,
        measured_at: dt.datetime | None = None,
        deployment_id: int | None = None,
    ) -> DeploymentRecord:
        """Record metrics measured while serving, against the active deployment of ``environment``."""
        store = self.store
        return store.run(
            lambda s: deployment_ops.log_production_metrics(
                s, store, model, environment, metrics, measured_at=measured_at, deployment_id=deployment_id
            )
        )

    def production_metrics(
        self,
        model: str | int,
        *,
        environment: str | None = None,
        metric: str | None = None,
        version: int | None = None,
    ) -> RecordList[ProductionMetricRecord]:
        with self.store.transaction(read_only=True) as s:
            return deployment_reads.production_metrics(
                s, model, environment=environment, metric=metric, version=version
            )

    def compare_production(
        self,
        model: str | int,
        environment: str,
        metric: str,
        *,
        training_metric: str | None = None,
        mode: str | None = None,
    ) -> RecordList[ProductionComparison]:
        """Each production measurement of ``metric`` over time beside the serving version's training value."""
        with self.store.transaction(read_only=True) as s:
            return ranking.compare_production(s, model, environment, metric, training_metric=training_metric, mode=mode)

    def audit(
        self,
        *,
        action: str | None = None,
        entity: str | None = None,
        entity_id: Any = None,
        since: dt.datetime | dt.date | None = None,
        limit: int = 100,
    ) -> RecordList[AuditRecord]:
        """Audit events, newest first; ``action="deployment.*"`` matches a prefix."""
        with self.store.transaction(read_only=True) as s:
            return audit_reads.audit_events(
                s, action=action, entity=entity, entity_id=entity_id, since=since, limit=limit
            )

    # ---------------------------------------------------------- ledgers for commands
    @classmethod
    def open_ledger(
        cls, uri: str | None = None, *, create: bool = False, hint: str, artifacts: str | None = None
    ) -> Tracker:
        """A Tracker with no offline spool, for a command that answers now or fails.

        Without ``create`` an SQLite path with no file is refused (``hint`` says what to do) rather
        than created empty; a URL SQLAlchemy cannot parse is refused either way. ``artifacts`` is
        the artifact store, when not the ledger's own.
        """
        resolved = resolve_uri(uri)
        if create:
            database_of(resolved)
        else:
            require_existing(resolved, hint=hint)
        return cls(resolved, create=create, spool=False, artifacts=artifacts)

    @classmethod
    def replay_spool(cls, uri: str | None = None, *, timeout: float | None = None) -> SpoolReplay:
        """Replay what processes left in the local spool for ``uri``; how many were replayed, how many wait."""
        from . import _spool as spool

        resolved = resolve_uri(uri)
        before = cls.spooled(resolved)
        set_aside, damaged = spool.dead_letters(resolved), set(spool.quarantined(resolved))
        try:  # a database still away is an error here, not a replay of nothing that "succeeds"
            cls(resolved, spool=False).close()
        except StorageUnavailableError as e:
            where = ", ".join(str(d) for d in spool.spool_dirs_for(resolved)) or "the spool"
            raise StorageUnavailableError(
                f"{e}; nothing was replayed: {before} spooled {'entry waits' if before == 1 else 'entries wait'} in "
                f"{where}. Run `modeltrail sync` again once the database is back.",
                value=e.value,
            ) from e
        tracker = cls(resolved, spool=True)
        try:
            waiting = tracker.sync(timeout=timeout)
        finally:
            tracker.close()
        left = cls.spooled(resolved)
        other_sync, running = spool.held_by_others(resolved)
        refused = spool.dead_letters(resolved) - set_aside
        letters = [
            str(f / spool.DEAD_LETTERS) for f in spool.spool_dirs_for(resolved) if (f / spool.DEAD_LETTERS).exists()
        ]
        return SpoolReplay(
            uri=mask_password(resolved),
            replayed=max(before - left - refused, 0),
            waiting=max(left, waiting),
            set_aside=refused,
            quarantined=tuple(str(p) for p in spool.quarantined(resolved) if p not in damaged),
            held_by_other_sync=other_sync,
            held_by_running=running,
            dead_letters=letters[0] if letters else None,
        )

    def plot(
        self,
        model: str | int,
        metric: str,
        path: str | os.PathLike[str],
        *,
        across_versions: bool = False,
        versions: Sequence[int] | None = None,
        mode: str | None = None,
    ) -> Path:
        """Draw ``metric`` to ``path`` (PNG, SVG or PDF by extension): each version's curve, or with
        ``across_versions`` final and best per version, deployed ones marked. Needs matplotlib."""
        from ._plots import plot_across_versions, plot_curves

        missing = NotFoundError(f"no version of model {model!r} logged metric {metric!r}", value=metric)
        if across_versions:
            rows = self.metric_by_version(model, metric, mode=mode)
            rows = RecordList(r for r in rows if versions is None or r.version in versions)
            if not rows:
                raise missing
            return plot_across_versions(rows, path, metric=metric)
        # A chart is a few hundred pixels wide: a long history is drawn from its downsampled curve.
        points = self.metric_curves(model, metric, versions=versions, max_points=PLOT_POINTS)
        if not points:
            raise missing
        return plot_curves(points, path, metric=metric)
