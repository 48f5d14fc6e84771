"""Moving from MLflow: import a MLflow SQL tracking store into a modeltrail ledger.

MLflow's tables are read with SQLAlchemy Core straight from its database (any SQLAlchemy URL
MLflow itself accepts: ``sqlite:///mlflow.db``, ``mysql+pymysql://...``, ``postgresql://...``), so
modeltrail needs no ``mlflow`` package to do it. How MLflow's world maps onto modeltrail's:

* a registered model becomes a model of the same name (its description, and its tags where a
  value fits modeltrail's 255 characters); each of its versions becomes a version **with the same
  number**, whose training is the MLflow run behind it (params, tags, full metric histories,
  times, status, user, git commit, dataset), made like every version by
  :func:`modeltrail._operations.versions.create_version` (parent, param diff, ``version.create``
  audit event) with its history written by :mod:`modeltrail._operations.metrics`;
* a run that no registered version points to becomes a training, without a version, of a model
  named after the run's **experiment**: in MLflow only registering makes a version, and a run
  registered twice becomes one training per version it is behind;
* params stay strings, as MLflow stored them (secret-looking keys are redacted like any param);
  metric histories keep every point with its step and time; NaN comes back as NaN and MLflow's
  stand-ins for infinities (+/-DBL_MAX) as +/-inf; every run tag, the experiment, the run name,
  the source, stages and aliases are kept in the training's ``context["mlflow"]``;
* deleted runs and experiments are left out; so are MLflow workspaces other than ``default``.

Re-importing is harmless: each training's uuid is derived from the MLflow run id (and the model
version it is behind), and a training already in the ledger is left as it is. A version number
already holding another training is refused before anything is written. Work goes in batches
of runs, one transaction each, with progress reported after every run.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid as uuid_mod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, Table, create_engine, inspect, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from .. import _schema as schema
from .._audit import record_event
from .._config import mask_password
from .._errors import ConfigurationError, StorageError, ValidationError
from .._operations.metrics import insert_metric_history
from .._operations.trainings import add_params, get_or_create_dataset, get_or_create_model, set_tags
from .._operations.versions import create_version, lock_model
from .._secrets import is_secret_key
from .._values import DBL_MAX, check_model_name, encode_param

if TYPE_CHECKING:
    from .._store import Store

#: Namespace of the uuids of imported trainings: the same MLflow run always gets the same uuid.
NAMESPACE = uuid_mod.UUID("5b0f6c2e-3a8e-4d55-9a3e-6d0d1c7f4e21")
_TABLES = (
    "experiments", "experiment_tags", "runs", "params", "tags", "metrics", "latest_metrics", "registered_models",
    "registered_model_tags", "model_versions", "model_version_tags", "registered_model_aliases", "datasets", "inputs",
    "input_tags",
)  # fmt: skip
_STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "failed", "RUNNING": "running", "SCHEDULED": "running"}
_IN_CHUNK = 500


@dataclass
class Unit:
    """One training to make: a run (or nothing, for a version registered from a path) and where it goes."""

    uuid: str
    model: str
    run_id: str | None
    number: int | None = None  # the version number, for a registered version
    version: dict[str, Any] | None = None  # the model_versions row


@dataclass
class MlflowImport:
    """What an import did."""

    source: str
    models: list[str] = field(default_factory=list)
    versions: int = 0
    trainings: int = 0
    skipped: int = 0
    metric_points: int = 0


class _Source:
    """MLflow's tables, reflected from its database (whichever MLflow version made them)."""

    def __init__(self, url: str) -> None:
        self.display = mask_password(url)
        try:
            self.engine = create_engine(url)
        except (ImportError, sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as e:
            raise ConfigurationError(f"cannot open the MLflow store {self.display}: {e}", value=self.display) from e
        try:
            present = set(inspect(self.engine).get_table_names())
        except sa_exc.DBAPIError as e:
            raise StorageError(f"cannot read the MLflow store {self.display}: {e.orig}", value=self.display) from e
        missing = {"experiments", "runs", "params", "tags", "metrics"} - present
        if missing:
            raise ValidationError(
                f"{self.display} is not a MLflow tracking store (no {', '.join(sorted(missing))} table)",
                value=self.display,
            )
        meta = MetaData()
        meta.reflect(bind=self.engine, only=[t for t in _TABLES if t in present])
        self.tables: dict[str, Table] = dict(meta.tables)

    def has(self, table: str, column: str | None = None) -> bool:
        found = self.tables.get(table)
        return found is not None and (column is None or column in found.c)

    def workspace_filter(self, table: str, workspace: str) -> Any:
        t = self.tables[table]
        return t.c.workspace == workspace if "workspace" in t.c else None

    def close(self) -> None:
        self.engine.dispose()


def _where(query: Any, condition: Any) -> Any:
    return query if condition is None else query.where(condition)


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _time(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)


def _value(value: float | None, is_nan: bool | None) -> float:
    """A MLflow metric value as logged: NaN from its flag, infinities from their +/-DBL_MAX stand-ins."""
    if is_nan or value is None:
        return float("nan")
    value = float(value)
    if value >= DBL_MAX:
        return float("inf")
    if value <= -DBL_MAX:
        return float("-inf")
    return value


def training_uuid(run_id: str | None, model: str | None = None, version: int | None = None, created: Any = None) -> str:
    """The uuid an imported MLflow run (behind a registered version, when given) always gets."""
    if model is None:
        return str(uuid_mod.uuid5(NAMESPACE, f"mlflow-run:{run_id}"))
    return str(uuid_mod.uuid5(NAMESPACE, f"mlflow-model-version:{model}:{version}:{run_id or created}"))


def import_mlflow(
    store: Store,
    url: str,
    *,
    batch_size: int = 100,
    workspace: str = "default",
    on_progress: Callable[[int, int], None] | None = None,
) -> MlflowImport:
    """Import the MLflow tracking store at ``url`` (see the module docstring); returns what was done."""
    if batch_size < 1:
        raise ValidationError(f"batch_size must be positive, got {batch_size!r}", value=batch_size)
    source = _Source(url)
    try:
        with source.engine.connect() as conn:
            units, experiments, runs, registered = _plan(conn, source, workspace)
        result = MlflowImport(source=source.display)
        with store.transaction(read_only=True) as s:
            todo = _check_conflicts(s, units)
        result.skipped = len(units) - len(todo)
        total = len(units)
        done = result.skipped
        if on_progress is not None:
            on_progress(done, total)
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            with source.engine.connect() as conn:
                facts = _read_batch(conn, source, [u.run_id for u in batch if u.run_id is not None])

            def write(s: Session, batch: list[Unit] = batch, facts: _Facts = facts) -> tuple[int, int, int]:
                return _write_batch(s, store, batch, facts, experiments, runs, registered)

            counts = store.run(write)
            result.trainings += counts[0]
            result.versions += counts[1]
            result.metric_points += counts[2]
            result.skipped += len(batch) - counts[0]
            done += len(batch)
            if on_progress is not None:
                on_progress(done, total)
        result.models = sorted({u.model for u in units})
        store.run(
            lambda s: record_event(
                s, store, action="mlflow.import", entity="ledger", entity_id=source.display[:64],
                after={"source": source.display, "models": result.models[:1000], "trainings": result.trainings,
                       "versions": result.versions, "skipped": result.skipped, "metric_points": result.metric_points},
            )
        )  # fmt: skip
        return result
    except sa_exc.DBAPIError as e:
        raise StorageError(f"cannot read the MLflow store {source.display}: {e.orig}", value=source.display) from e
    finally:
        source.close()


# ------------------------------------------------------------------ planning
def _plan(
    conn: Connection, src: _Source, workspace: str
) -> tuple[list[Unit], dict[int, dict[str, Any]], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(units in import order, experiments by id, runs by id, registered models by name)."""
    exp = src.tables["experiments"]
    experiments: dict[int, dict[str, Any]] = {}
    for row in conn.execute(_where(select(exp), src.workspace_filter("experiments", workspace))).mappings():
        experiments[row["experiment_id"]] = {**row, "tags": {}}
    if src.has("experiment_tags"):
        et = src.tables["experiment_tags"]
        for experiment_id, key, value in conn.execute(select(et.c.experiment_id, et.c.key, et.c.value)):
            if experiment_id in experiments:
                experiments[experiment_id]["tags"][key] = value
    live = {i for i, e in experiments.items() if e.get("lifecycle_stage") != "deleted"}
    r = src.tables["runs"]
    runs: dict[str, dict[str, Any]] = {}
    for row in conn.execute(select(r).order_by(r.c.start_time, r.c.run_uuid)).mappings():
        if row["experiment_id"] in live and row.get("lifecycle_stage") != "deleted":
            runs[row["run_uuid"]] = dict(row)
    registered: dict[str, dict[str, Any]] = {}
    units: list[Unit] = []
    behind: set[str] = set()
    if src.has("registered_models") and src.has("model_versions"):
        rm, mv = src.tables["registered_models"], src.tables["model_versions"]
        for row in conn.execute(
            _where(select(rm), src.workspace_filter("registered_models", workspace)).order_by(rm.c.name)
        ).mappings():
            registered[row["name"]] = {**row, "tags": {}, "aliases": {}}
        if src.has("registered_model_tags"):
            rt = src.tables["registered_model_tags"]
            query = _where(
                select(rt.c.name, rt.c.key, rt.c.value), src.workspace_filter("registered_model_tags", workspace)
            )
            for name, key, value in conn.execute(query):
                if name in registered:
                    registered[name]["tags"][key] = value
        if src.has("registered_model_aliases"):
            ra = src.tables["registered_model_aliases"]
            query = _where(
                select(ra.c.name, ra.c.alias, ra.c.version), src.workspace_filter("registered_model_aliases", workspace)
            )
            for name, alias, version in conn.execute(query):
                if name in registered:
                    registered[name]["aliases"].setdefault(version, []).append(alias)
        version_tags: dict[tuple[str, int], dict[str, str]] = {}
        if src.has("model_version_tags"):
            vt = src.tables["model_version_tags"]
            query = _where(
                select(vt.c.name, vt.c.version, vt.c.key, vt.c.value),
                src.workspace_filter("model_version_tags", workspace),
            )
            for name, version, key, value in conn.execute(query):
                version_tags.setdefault((name, version), {})[key] = value
        query = _where(select(mv), src.workspace_filter("model_versions", workspace)).order_by(mv.c.name, mv.c.version)
        for row in conn.execute(query).mappings():
            name = row["name"]
            if name not in registered:
                continue
            run_id = row.get("run_id")
            if run_id is not None and run_id not in runs:
                run_id = None  # its run was deleted (or lives in another workspace): the version stands alone
            version = {
                **row,
                "tags": version_tags.get((name, row["version"]), {}),
                "aliases": sorted(registered[name]["aliases"].get(row["version"], [])),
            }
            units.append(
                Unit(
                    uuid=training_uuid(run_id, name, row["version"], row.get("creation_time")),
                    model=check_model_name(name[: schema.NAME_MAX]),
                    run_id=run_id,
                    number=int(row["version"]),
                    version=version,
                )
            )
            if run_id is not None:
                behind.add(run_id)
    for run_id, run in runs.items():
        if run_id in behind:
            continue
        name = str(experiments[run["experiment_id"]]["name"])[: schema.NAME_MAX].strip() or "mlflow"
        units.append(Unit(uuid=training_uuid(run_id), model=check_model_name(name), run_id=run_id))
    return units, experiments, runs, registered


def _check_conflicts(s: Session, units: list[Unit]) -> list[Unit]:
    """The units still to import; refuses when a version number holds another training."""
    known: set[str] = set()
    uuids = [u.uuid for u in units]
    t, v, m = schema.TrainingRow, schema.VersionRow, schema.ModelRow
    for chunk in _chunks(uuids):
        known.update(s.execute(select(t.uuid).where(t.uuid.in_(list(chunk)))).scalars())
    numbered = [u for u in units if u.number is not None and u.uuid not in known]
    names = sorted({u.model for u in numbered})
    taken: dict[tuple[str, int], str] = {}
    for chunk in _chunks(names):
        query = (
            select(m.name, v.number, t.uuid)
            .join(v, v.model_id == m.id)
            .join(t, t.id == v.training_id)
            .where(m.name.in_(list(chunk)))
        )
        for name, number, training in s.execute(query):
            taken[(name, number)] = training
    for u in numbered:
        assert u.number is not None
        other = taken.get((u.model, u.number))
        if other is not None and other != u.uuid:
            raise ValidationError(
                f"version {u.number} of model {u.model!r} already exists in this ledger with another training "
                f"({other}); nothing was imported",
                value=u.number,
            )
    return [u for u in units if u.uuid not in known]


# ------------------------------------------------------------------ reading one batch
@dataclass
class _Facts:
    params: dict[str, dict[str, str]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    metrics: dict[str, dict[str, list[tuple[int, float, float]]]] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)


def _read_batch(conn: Connection, src: _Source, run_ids: list[str]) -> _Facts:
    facts = _Facts()
    if not run_ids:
        return facts
    p, tg, mt = src.tables["params"], src.tables["tags"], src.tables["metrics"]
    for chunk in _chunks(run_ids):
        ids = list(chunk)
        for run_id, key, value in conn.execute(select(p.c.run_uuid, p.c.key, p.c.value).where(p.c.run_uuid.in_(ids))):
            facts.params.setdefault(run_id, {})[key] = value
        for run_id, key, value in conn.execute(
            select(tg.c.run_uuid, tg.c.key, tg.c.value).where(tg.c.run_uuid.in_(ids))
        ):
            facts.tags.setdefault(run_id, {})[key] = value
        query = (
            select(mt.c.run_uuid, mt.c.key, mt.c.step, mt.c.value, mt.c.is_nan, mt.c.timestamp)
            .where(mt.c.run_uuid.in_(ids))
            .order_by(mt.c.run_uuid, mt.c.key, mt.c.timestamp, mt.c.step, mt.c.is_nan, mt.c.value)
        )
        for run_id, key, step, value, is_nan, ts in conn.execute(query):
            facts.metrics.setdefault(run_id, {}).setdefault(key, []).append(
                (int(step or 0), _value(value, is_nan), (ts or 0) / 1000)
            )
        if src.has("latest_metrics"):  # keys only the summary table knows (a store trimmed by hand)
            lm = src.tables["latest_metrics"]
            query = select(lm.c.run_uuid, lm.c.key, lm.c.step, lm.c.value, lm.c.is_nan, lm.c.timestamp).where(
                lm.c.run_uuid.in_(ids)
            )
            for run_id, key, step, value, is_nan, ts in conn.execute(query):
                history = facts.metrics.setdefault(run_id, {})
                if key not in history:
                    history[key] = [(int(step or 0), _value(value, is_nan), (ts or 0) / 1000)]
        if src.has("inputs") and src.has("datasets"):
            _read_datasets(conn, src, ids, facts)
    return facts


def _read_datasets(conn: Connection, src: _Source, ids: list[str], facts: _Facts) -> None:
    """The dataset each run was trained on: its MLflow input tagged as training data, else its first input."""
    inp, ds = src.tables["inputs"], src.tables["datasets"]
    contexts: dict[str, str] = {}
    if src.has("input_tags"):
        it = src.tables["input_tags"]
        query = (
            select(it.c.input_uuid, it.c.value)
            .join(inp, inp.c.input_uuid == it.c.input_uuid)
            .where(it.c.name == "mlflow.data.context", inp.c.destination_id.in_(ids))
        )
        contexts = {i: v for i, v in conn.execute(query)}
    query = (
        select(inp.c.destination_id, inp.c.input_uuid, ds)
        .join(ds, ds.c.dataset_uuid == inp.c.source_id)
        .where(inp.c.source_type == "DATASET", inp.c.destination_type == "RUN", inp.c.destination_id.in_(ids))
        .order_by(inp.c.destination_id, inp.c.input_uuid)
    )
    for row in conn.execute(query).mappings():
        run_id = row["destination_id"]
        training = contexts.get(row["input_uuid"]) in ("train", "training")
        if run_id in facts.datasets and not training:
            continue
        facts.datasets[run_id] = _dataset(dict(row))


def _dataset(row: Mapping[str, Any]) -> dict[str, Any]:
    n_rows = None
    features = None
    try:
        profile = json.loads(row.get("dataset_profile") or "null")
        if isinstance(profile, dict) and isinstance(profile.get("num_rows"), int):
            n_rows = profile["num_rows"]
    except ValueError:
        pass
    try:
        spec = json.loads(row.get("dataset_schema") or "null")
        columns = spec.get("mlflow_colspec") if isinstance(spec, dict) else None
        if isinstance(columns, list):
            features = [str(c.get("name")) for c in columns if isinstance(c, dict) and c.get("name") is not None]
    except ValueError:
        pass
    source = row.get("dataset_source")
    try:  # MLflow keeps the source as JSON, {"uri": ...} for files and URLs
        parsed = json.loads(source or "null")
        if isinstance(parsed, dict) and isinstance(parsed.get("uri"), str):
            source = parsed["uri"]
    except ValueError:
        pass
    return {
        "name": str(row["name"])[: schema.NAME_MAX],
        "digest": str(row["digest"])[:64],
        "n_rows": n_rows,
        "n_features": len(features) if features else None,
        "shape": None,
        "features": features or None,
        "source": source,
    }


# ------------------------------------------------------------------ writing one batch
def _write_batch(
    s: Session,
    store: Store,
    units: list[Unit],
    facts: _Facts,
    experiments: Mapping[int, Mapping[str, Any]],
    runs: Mapping[str, Mapping[str, Any]],
    registered: Mapping[str, Mapping[str, Any]],
) -> tuple[int, int, int]:
    """Import one batch in the caller's transaction; (trainings, versions, metric points) written."""
    trainings = versions = points = 0
    for u in units:
        if s.execute(select(schema.TrainingRow.id).where(schema.TrainingRow.uuid == u.uuid)).first() is not None:
            continue  # a concurrent import got here first
        model_info = registered.get(u.model) if u.number is not None else None
        model = get_or_create_model(
            s, store, u.model, description=(model_info or {}).get("description"), framework=None, model_type=None
        )
        if model_info is not None:
            tags = {k: v for k, v in (model_info.get("tags") or {}).items() if v is not None and len(v) <= schema.SHORT}
            if tags:
                set_tags(s, model.id, {k[:128]: v for k, v in tags.items()}, overwrite=False)
        run = runs.get(u.run_id) if u.run_id is not None else None
        tags = facts.tags.get(u.run_id, {}) if u.run_id else {}
        context = _context(u, run, tags, experiments, model_info)
        start = _time(run.get("start_time")) if run else None
        end = _time(run.get("end_time")) if run else None
        created = _time(u.version.get("creation_time")) if u.version else None
        status = _STATUS.get(str(run.get("status")), "finished") if run else "finished"
        if u.number is not None:
            status = "finished" if status == "running" else status
        dataset = facts.datasets.get(u.run_id) if u.run_id else None
        artifact = None
        if u.version is not None:
            artifact = u.version.get("storage_location") or u.version.get("source")
        training = schema.TrainingRow(
            uuid=u.uuid,
            model_id=model.id,
            status=status,
            started_at=start or created or schema.utcnow(),
            ended_at=end if end is not None else (created if run is None else None),
            duration_s=(end - start).total_seconds() if start is not None and end is not None else None,
            dataset_id=get_or_create_dataset(s, dataset) if dataset is not None else None,
            artifact_path=artifact,
            error=f"MLflow run status {run.get('status')}" if run and status == "failed" else None,
            run_by=(run.get("user_id") if run else None) or (u.version or {}).get("user_id") or tags.get("mlflow.user"),
            host=None,
            git_commit=(tags.get("mlflow.source.git.commit") or (run or {}).get("source_version") or None),
            context=context,
        )
        if training.run_by is not None:
            training.run_by = str(training.run_by)[:128]
        if training.git_commit is not None:
            training.git_commit = str(training.git_commit)[:64]
        s.add(training)
        s.flush()
        params = facts.params.get(u.run_id, {}) if u.run_id else {}
        add_params(s, training.id, {k: encode_param(k, v) for k, v in params.items()})
        points += insert_metric_history(s, training.id, facts.metrics.get(u.run_id, {}) if u.run_id else {})
        trainings += 1
        if u.number is not None:
            _add_version(s, store, model, u.number, training.id, artifact, created or schema.utcnow())
            versions += 1
    return trainings, versions, points


def _add_version(
    s: Session, store: Store, model: schema.ModelRow, number: int, training_id: int, artifact: str | None, created: Any
) -> None:
    """Version ``number`` of ``model``, its parent the highest number below it, its param diff against that."""
    locked = lock_model(s, model.id)
    v = schema.VersionRow
    if s.execute(select(v.id).where(v.model_id == locked.id, v.number == number)).first() is not None:
        raise ValidationError(
            f"version {number} of model {locked.name!r} was taken while importing; nothing of this batch was written",
            value=number,
        )
    create_version(s, store, locked, training_id, number=number, artifact_path=artifact, created_at=created)


def _context(
    u: Unit,
    run: Mapping[str, Any] | None,
    tags: Mapping[str, str],
    experiments: Mapping[int, Mapping[str, Any]],
    model_info: Mapping[str, Any] | None,
) -> dict[str, Any]:
    mlflow: dict[str, Any] = {}
    context: dict[str, Any] = {"mlflow": mlflow, "seeds": {}}
    if run is not None:
        experiment = experiments.get(run["experiment_id"], {})
        mlflow.update(
            run_id=run["run_uuid"],
            run_name=run.get("name") or tags.get("mlflow.runName"),
            status=run.get("status"),
            experiment_id=run["experiment_id"],
            experiment=experiment.get("name"),
            experiment_tags=dict(experiment.get("tags") or {}),
            artifact_uri=run.get("artifact_uri"),
            source_type=run.get("source_type"),
            source_name=run.get("source_name") or tags.get("mlflow.source.name"),
            entry_point=run.get("entry_point_name"),
            tags={k: ("***" if is_secret_key(k) else v) for k, v in sorted(tags.items())},
        )
        commit = tags.get("mlflow.source.git.commit")
        if commit:
            context["git"] = {"commit": commit, "branch": tags.get("mlflow.source.git.branch"), "dirty": None,
                              "root": tags.get("mlflow.source.git.repoURL")}  # fmt: skip
        if run.get("user_id") or tags.get("mlflow.user"):
            context["user"] = run.get("user_id") or tags.get("mlflow.user")
        source = tags.get("mlflow.source.name") or run.get("source_name")
        if source:
            context["command"] = [source]
    if u.version is not None:
        mlflow["registered_model"] = {
            "name": u.version["name"],
            "version": u.version["version"],
            "description": u.version.get("description"),
            "stage": u.version.get("current_stage"),
            "status": u.version.get("status"),
            "source": u.version.get("source"),
            "storage_location": u.version.get("storage_location"),
            "user_id": u.version.get("user_id"),
            "aliases": u.version.get("aliases") or [],
            "tags": dict(sorted((u.version.get("tags") or {}).items())),
            "model_tags": dict(sorted(((model_info or {}).get("tags") or {}).items())),
        }
    return context
