"""What the command line and the dashboard ask of a :class:`~modeltrail.Tracker`.

They never open transactions, read files or parse URLs themselves: these methods do it for them.
A mixin of ``Tracker`` so that ``_tracker.py`` keeps to the API people call from training code.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ._config import database_of, resolve_uri
from ._read import deployments as deployment_reads
from ._read import overview, queries, ranking
from ._records import (
    AuditOptions,
    Comparison,
    DeploymentRecord,
    ExportResult,
    FilterOptions,
    MetricInfo,
    ModelPage,
    ModelSummary,
    SchemaState,
    Series,
    TrainingCounts,
)
from ._store import Store


class LedgerViews:
    """Pages, series, files and administration for ``cli/`` and ``ui/`` (mixed into ``Tracker``)."""

    #: Points of one chart series by default; longer histories are thinned to every n-th point.
    SERIES_POINTS_MAX = overview.SERIES_POINTS_MAX

    @property
    def store(self) -> Store:
        raise NotImplementedError  # Tracker's own property

    @staticmethod
    def metric_mode(metric: str) -> str | None:
        """The direction its name makes clear for ``metric`` ("min" for losses and errors, "max" for
        accuracies and AUCs), or None when the name does not say."""
        return ranking.infer_goal(metric)

    def metric_goal(self, model: str | int, metric: str) -> str | None:
        """Which way is better for ``metric`` of ``model``: its declared goal, else the name's, else None."""
        with self.store.transaction(read_only=True) as s:
            return ranking.metric_goals(s, queries.resolve_model(s, model).id, [metric])[metric]

    def training_counts(self, model: str | int) -> TrainingCounts:
        """A model's trainings by status, and how many have no version (failed, running, imported runs)."""
        with self.store.transaction(read_only=True) as s:
            return queries.training_counts(s, model)

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
        """Write :meth:`~modeltrail.Tracker.export`'s documents to a file, a stream or a directory."""
        from ._exchange.export import export_to

        return export_to(
            self.store, model, version=version, path=path, directory=directory, stream=stream, on_progress=on_progress
        )

    @staticmethod
    def read_documents(paths: Sequence[str], *, stdin: TextIO | None = None) -> list[dict[str, Any]]:
        """Exported documents from JSON / JSON Lines files or directories; ``-`` reads ``stdin``."""
        from ._exchange.imports import read_sources

        return read_sources(paths, stdin=stdin)

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
    def grant_statements(
        uri: str | None = None,
        *,
        database: str | None = None,
        writer: str = "modeltrail_writer",
        operator: str = "modeltrail_operator",
        analyst: str = "modeltrail_analyst",
        host: str = "%",
    ) -> tuple[str, list[str], str]:
        """Least privilege for the backend ``uri`` names: (database, statements, the script its client runs).

        ``database`` overrides the one in ``uri``. MySQL/MariaDB and PostgreSQL; SQLite has no users
        (a :class:`ConfigurationError`).
        """
        from ._grants import grant_statements, script

        backend, named = database_of(resolve_uri(uri))
        dialect = {"mariadb": "mysql", "postgres": "postgresql"}.get(backend, backend)
        name = database or named
        statements = grant_statements(
            name, dialect=dialect, writer=writer, operator=operator, analyst=analyst, host=host
        )
        return name, statements, script(statements, dialect)
