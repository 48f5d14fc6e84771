"""The entry point users hold: ``Tracker`` opens a ledger, starts trainings and answers questions."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from ._config import database_of, mask_password, require_existing, resolve_uri
from ._dataset import Dataset
from ._errors import NotFoundError
from ._operations import deployments as deployment_ops
from ._operations import evaluations as evaluation_ops
from ._read import audit as audit_reads
from ._read import deployments as deployment_reads
from ._read import evaluations as evaluation_reads
from ._read import lineage as lineage_mod
from ._read import overview, queries, ranking
from ._records import (
    AuditOptions,
    AuditRecord,
    Comparison,
    CurvePoint,
    DatasetUse,
    DeploymentRecord,
    Difference,
    EvaluationRecord,
    ExportResult,
    FilterOptions,
    LeaderboardEntry,
    Lineage,
    MetricInfo,
    MetricPoint,
    ModelDetails,
    ModelPage,
    ModelRecord,
    ModelSummary,
    ProductionComparison,
    ProductionMetricRecord,
    RecordList,
    Reproduction,
    SchemaState,
    Series,
    SpoolReplay,
    TrainingRecord,
    VersionMetric,
    VersionRecord,
)
from ._store import Store, get_store, release
from ._training import Training
from ._writer import close_writer, writer_for


class Tracker:
    """A handle on one ledger (database). Cheap to make; pickles as its URL only.

    ``uri`` is any SQLAlchemy URL: ``sqlite:///path.db`` (the default, from
    ``MODELTRAIL_URI`` or ``./modeltrail.db``), ``mysql+pymysql://user:pw@host/db``,
    ``postgresql+psycopg://user@host/db``.
    """

    def __init__(
        self,
        uri: str | None = None,
        *,
        create: bool = True,
        spool: bool = True,
        spool_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.uri = resolve_uri(uri)
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
        return {"uri": self.uri, "create": self._create, "spool": self._spool, "spool_dir": self._spool_dir}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.uri = state["uri"]
        self._create = state["create"]
        self._spool = state.get("spool", True)
        self._spool_dir = state.get("spool_dir")
        self._store = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = get_store(self.uri, create=self._create, offline_ok=self._spool, spool_dir=self._spool_dir)
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
    ) -> Training:
        """Start a training of ``model`` (created on first use). Use it as a context manager."""
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
        )

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything logged through this ledger is in the database or the durable spool."""
        writer_for(self.store).flush(timeout)

    def sync(self, timeout: float | None = None) -> int:
        """Replay spooled work (this process's and that of ended processes) now; returns entries still waiting."""
        writer = writer_for(self.store)
        writer.flush(timeout)
        return int(writer.sync(timeout))

    def close(self) -> None:
        """Flush and stop this ledger's writer, then release its database connections in this process."""
        store = self._store
        if store is None:
            return
        close_writer(store)
        release(store)
        self._store = None

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

    def trainings(self, model: str | int | None = None, *, status: str | None = None) -> RecordList[TrainingRecord]:
        with self.store.transaction(read_only=True) as s:
            return queries.trainings(s, model, status=status)

    def get_training(self, training_id: int) -> TrainingRecord:
        with self.store.transaction(read_only=True) as s:
            return queries.training(s, training_id)

    def versions(self, model: str | int) -> RecordList[VersionRecord]:
        with self.store.transaction(read_only=True) as s:
            return queries.versions(s, model)

    def metric_history(
        self, training_or_version: Any, key: str, *, version: int | None = None
    ) -> RecordList[MetricPoint]:
        """Every point of metric ``key``: of a training, a version record, or a model's version (latest by default)."""
        with self.store.transaction(read_only=True) as s:
            training_id = queries.resolve_training_id(s, training_or_version, version=version)
            return queries.metric_history(s, training_id, key)

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
        mode: str = "max",
        by: str = "best",
        limit: int | None = None,
        dataset: str | None = None,
    ) -> RecordList[LeaderboardEntry]:
        """Versions ranked by ``metric``: ``by="best"`` uses each training's best value over its whole history.

        With ``dataset``, versions are ranked by ``metric`` of their latest evaluation on that dataset.
        """
        with self.store.transaction(read_only=True) as s:
            return ranking.leaderboard(s, model, metric, mode=mode, by=by, limit=limit, dataset=dataset)

    def best_version(
        self, model: str | int, *, metric: str, mode: str = "max", by: str = "best", dataset: str | None = None
    ) -> LeaderboardEntry:
        """The top of :meth:`leaderboard`; NotFoundError when no version logged ``metric``."""
        with self.store.transaction(read_only=True) as s:
            top = ranking.leaderboard(s, model, metric, mode=mode, by=by, limit=1, dataset=dataset)
        if not top:
            raise NotFoundError(f"no version of model {model!r} logged metric {metric!r}", value=metric)
        return top[0]

    def metric_by_version(self, model: str | int, metric: str, *, mode: str | None = None) -> RecordList[VersionMetric]:
        """``metric``'s final and best value in each version, with where each version serves now."""
        with self.store.transaction(read_only=True) as s:
            return ranking.metric_by_version(s, model, metric, mode=mode)

    def metric_curves(
        self, model: str | int, metric: str, *, versions: Sequence[int] | None = None
    ) -> RecordList[CurvePoint]:
        """Every point of ``metric`` in every version (or ``versions``): one table, one curve per version."""
        with self.store.transaction(read_only=True) as s:
            return queries.metric_curves(s, model, metric, versions=versions)

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
        self, documents: Sequence[Mapping[str, Any]], *, deployments: bool = True, source: str | None = None
    ) -> dict[str, Any]:
        """Load exported documents into this ledger, all or nothing; versions keep their numbers."""
        from ._exchange.imports import import_documents

        return dict(import_documents(self.store, documents, deployments=deployments, source=source))

    def import_mlflow(self, url: str, *, batch_size: int = 100) -> Any:
        """Import a MLflow SQL tracking store (experiments, runs, registered models); see ``mlflow_import``."""
        from ._exchange.mlflow import import_mlflow

        return import_mlflow(self.store, url, batch_size=batch_size)

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
    ) -> DeploymentRecord:
        """Make ``version`` what serves ``environment``; the deployment it replaces is marked superseded."""
        store = self.store
        return store.run(
            lambda s: deployment_ops.deploy(
                s, store, model, version, environment, endpoint=endpoint, reason=reason, deployed_by=deployed_by
            )
        )

    def rollback(
        self, model: str | int, environment: str, *, reason: str | None = None, deployed_by: str | None = None
    ) -> DeploymentRecord:
        """Return ``environment`` to the version active before the current one; repeated calls walk further back."""
        store = self.store
        return store.run(
            lambda s: deployment_ops.rollback(s, store, model, environment, reason=reason, deployed_by=deployed_by)
        )

    def undeploy(
        self,
        model: str | int,
        environment: str,
        *,
        version: int | None = None,
        reason: str | None = None,
        deployed_by: str | None = None,
    ) -> DeploymentRecord:
        """Retire what serves ``environment`` (refused unless it is ``version``, when given)."""
        store = self.store
        return store.run(
            lambda s: deployment_ops.undeploy(
                s, store, model, environment, version=version, reason=reason, deployed_by=deployed_by
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

    # =====================================================================================
    # For the command line and the dashboard (cli/, ui/): they ask these instead of opening
    # transactions, reading files or parsing URLs themselves. Added as one block, kept last.
    # =====================================================================================
    #: Points of one chart series by default; longer histories are thinned to every n-th point.
    SERIES_POINTS_MAX = overview.SERIES_POINTS_MAX

    @classmethod
    def open_ledger(cls, uri: str | None = None, *, create: bool = False, hint: str) -> Tracker:
        """A Tracker with no offline spool, for a command that answers now or fails.

        Without ``create`` an SQLite path with no file is refused (``hint`` says what to do) rather
        than created empty; a URL SQLAlchemy cannot parse is refused either way.
        """
        resolved = resolve_uri(uri)
        if create:
            database_of(resolved)
        else:
            require_existing(resolved, hint=hint)
        return cls(resolved, create=create, spool=False)

    @staticmethod
    def metric_mode(metric: str) -> str:
        """The direction that is better for ``metric`` when nobody said: "min" for losses and errors, else "max"."""
        return ranking.metric_mode(metric)

    def model_summaries(
        self,
        *,
        framework: str | None = None,
        model_type: str | None = None,
        tag: str | None = None,
        name: str | None = None,
    ) -> list[ModelSummary]:
        """:meth:`models`, each with the version serving in each environment now (two queries in all)."""
        with self.store.transaction(read_only=True) as s:
            found = queries.find_models(s, framework=framework, model_type=model_type, tag=tag, name_like=name)
            return overview.model_summaries(s, list(found))

    def filter_options(self) -> FilterOptions:
        """The frameworks, model types and tags models can be filtered by."""
        with self.store.transaction(read_only=True) as s:
            return overview.filter_options(s)

    def model_page(self, model: str | int) -> ModelPage:
        """A model, its metrics (most logged first), its versions table and deployments, in a few narrow queries."""
        with self.store.transaction(read_only=True) as s:
            return overview.model_page(s, model)

    def model_metrics(self, model: str | int) -> list[MetricInfo]:
        """Every metric the model's versions logged, most widely logged first, stage timings after the rest."""
        with self.store.transaction(read_only=True) as s:
            return overview.model_metrics(s, queries.resolve_model(s, model).id)

    def metric_series(
        self,
        model: str | int,
        metric: str,
        *,
        versions: Sequence[int] | None = None,
        max_points: int = overview.SERIES_POINTS_MAX,
    ) -> list[Series]:
        """``metric``'s history in each of ``versions`` (default: the latest six that logged it), thinned."""
        with self.store.transaction(read_only=True) as s:
            return overview.curves(s, model, metric, versions, max_points=max_points)

    def training_series(
        self, training_id: int, *, metric: str | None = None, max_points: int = overview.SERIES_POINTS_MAX
    ) -> list[Series]:
        """Each metric's history of one training (or only ``metric``), thinned to ``max_points`` (0: all)."""
        with self.store.transaction(read_only=True) as s:
            return overview.training_series(s, training_id, metric=metric, max_points=max_points)

    def audit_options(self) -> AuditOptions:
        """The actions and entities the audit log holds."""
        with self.store.transaction(read_only=True) as s:
            return overview.audit_options(s)

    def compare_latest(self, model: str | int, a: int | None = None, b: int | None = None) -> Comparison:
        """:meth:`compare`, where ``b`` defaults to the latest version and ``a`` to ``b``'s parent."""
        with self.store.transaction(read_only=True) as s:
            model_id, a, b = overview.comparison_pair(s, model, a, b)
            return ranking.compare(s, model_id, a, b)

    def deployments_at(
        self,
        model: str | int,
        at: dt.datetime | dt.date,
        *,
        environment: str | None = None,
        version: int | None = None,
    ) -> dict[str, DeploymentRecord | None]:
        """Environment -> what served there at ``at`` (every environment the model was ever in, or one).

        With ``version``, only the environments where that version served then.
        """
        with self.store.transaction(read_only=True) as s:
            if environment is not None:
                environments = [environment]
            else:
                environments = sorted({d.environment for d in deployment_reads.deployments(s, model)})
            found = {env: deployment_reads.deployment_at(s, model, env, at) for env in environments}
        if version is not None:
            found = {env: d for env, d in found.items() if d is not None and d.version == version}
        return found

    def export_to(
        self,
        model: str | int,
        *,
        version: int | None = None,
        path: str | os.PathLike[str] | None = None,
        directory: str | os.PathLike[str] | None = None,
        stream: TextIO | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> ExportResult:
        """Export a model's versions (or one) as JSON Lines to ``path`` or ``stream`` (stdout by default),
        or into ``directory`` as one pretty-printed ``<model>-v<N>.json`` per version.

        Each version is read in its own short transaction; ``on_progress(done, total)`` follows them.
        """
        from ._exchange.export import dumps, export_version, version_numbers

        with self.store.transaction(read_only=True) as s:
            name, numbers = version_numbers(s, model, version)
        files: list[str] = []
        if directory is not None:
            os.makedirs(directory, exist_ok=True)
            safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._") or "model"
        target = open(path, "w", encoding="utf-8") if path is not None else None  # noqa: SIM115 - closed below
        try:
            for done, number in enumerate(numbers, 1):
                with self.store.transaction(read_only=True) as s:
                    document = export_version(s, name, number)
                if directory is not None:
                    file = os.path.join(os.fspath(directory), f"{safe}-v{number}.json")
                    with open(file, "w", encoding="utf-8") as fh:
                        fh.write(dumps(document, indent=2) + "\n")
                    files.append(file)
                else:
                    (target or stream or sys.stdout).write(dumps(document) + "\n")
                if on_progress is not None:
                    on_progress(done, len(numbers))
        finally:
            if target is not None:
                target.close()
        return ExportResult(model=name, versions=numbers, files=files or ([os.fspath(path)] if path else []))

    @staticmethod
    def read_documents(paths: Sequence[str], *, stdin: TextIO | None = None) -> list[dict[str, Any]]:
        """Exported documents from JSON / JSON Lines files or directories; ``-`` reads ``stdin``."""
        from ._exchange.imports import parse_documents
        from ._exchange.imports import read_documents as read_path

        documents: list[dict[str, Any]] = []
        for path in paths:
            if path == "-":
                documents += parse_documents((stdin or sys.stdin).read(), source="<stdin>")
            else:
                documents += read_path(path)
        return documents

    def import_batch(
        self,
        documents: Sequence[Mapping[str, Any]],
        *,
        deployments: bool = True,
        source: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """:meth:`import_documents` with ``on_progress(done, total)`` called after each document."""
        from ._exchange.imports import import_documents

        done = itertools.count(1)
        advance = (lambda: on_progress(next(done), len(documents))) if on_progress is not None else None
        return dict(
            import_documents(self.store, documents, deployments=deployments, source=source, on_document=advance)
        )

    def import_mlflow_runs(
        self, url: str, *, batch_size: int = 100, on_progress: Callable[[int, int], None] | None = None
    ) -> Any:
        """:meth:`import_mlflow` with ``on_progress(done, total)`` called as runs are written."""
        from ._exchange.mlflow import import_mlflow

        return import_mlflow(self.store, url, batch_size=batch_size, on_progress=on_progress)

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
        points = self.metric_curves(model, metric, versions=versions)
        if not points:
            raise missing
        return plot_curves(points, path, metric=metric)

    @staticmethod
    def upgrade_schema(uri: str | None = None, revision: str = "head") -> dict[str, Any]:
        """Create the schema or migrate it to ``revision``; ``{"uri", "from", "to"}`` revisions."""
        store = Store(resolve_uri(uri), create=False, check=False)
        try:
            before, after = store.upgrade(revision)
        finally:
            store.close()
        return {"uri": store.display_uri, "from": before, "to": after}

    @staticmethod
    def schema_state(uri: str | None = None) -> SchemaState:
        """The database's schema revision beside the newest, without requiring either."""
        from sqlalchemy.exc import DBAPIError

        from . import _migrations as migrations

        store = Store(resolve_uri(uri), create=False, check=False)
        try:
            current = migrations.current_revision(store.engine)
        except DBAPIError as e:
            raise store.translate(e) from e
        finally:
            store.close()
        head = migrations.head_revision()
        state = "up to date" if current == head else "no modeltrail schema" if current is None else "outdated"
        return SchemaState(uri=store.display_uri, current=current, head=head, state=state)

    @staticmethod
    def spooled(uri: str | None = None) -> int:
        """Entries waiting in this machine's spool for the database at ``uri`` (of any process)."""
        from . import _spool as spool

        return spool.pending(resolve_uri(uri))

    @staticmethod
    def replay_spool(uri: str | None = None, *, timeout: float | None = None) -> SpoolReplay:
        """Replay what processes left in the local spool for ``uri``; how many were replayed, how many wait."""
        resolved = resolve_uri(uri)
        before = Tracker.spooled(resolved)
        tracker = Tracker(resolved, spool=True)
        try:
            waiting = tracker.sync(timeout=timeout)
        finally:
            tracker.close()
        left = Tracker.spooled(resolved)
        return SpoolReplay(uri=mask_password(resolved), replayed=max(before - left, 0), waiting=max(left, waiting))

    @staticmethod
    def grant_statements(
        uri: str | None = None,
        *,
        database: str | None = None,
        writer: str = "modeltrail_writer",
        operator: str = "modeltrail_operator",
        analyst: str = "modeltrail_analyst",
        host: str = "%",
    ) -> tuple[str, list[str]]:
        """The database (``database``, else the one ``uri`` names) and least-privilege GRANTs for MySQL/MariaDB."""
        from ._grants import grant_statements

        name = database or database_of(resolve_uri(uri))[1]
        return name, grant_statements(name, writer=writer, operator=operator, analyst=analyst, host=host)

    # ======================================================= end of the cli/ui block
