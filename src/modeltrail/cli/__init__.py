"""The ``modeltrail`` command: the ledger's answers for people (tables) and scripts (``--json``).

Thin on purpose: every answer comes from :class:`~modeltrail.Tracker`, so the command line
and Python always agree. Errors are one line on stderr (``modeltrail: error: ...``) with
exit status 2; a database password never reaches the output.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from .._config import mask_password, resolve_uri
from .._errors import ConfigurationError, ModeltrailError, ValidationError
from .._progress import Progress

if TYPE_CHECKING:
    from .._store import Store
    from .._tracker import Tracker

EXIT_ERROR = 2


class UsageError(Exception):
    """A command line argparse refused; reported in one line like every other error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# ------------------------------------------------------------------ output
def to_jsonable(value: Any) -> Any:
    """Records as JSON: datetimes in ISO 8601, non-finite floats as "NaN", "Infinity", "-Infinity"."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(to_jsonable(value), sort_keys=True, ensure_ascii=False)
    return str(value)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Left-aligned columns separated by two spaces; cells are single lines."""
    cells = [[fmt(c).replace("\n", " ") for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _short(commit: str | None) -> str | None:
    return commit[:10] if commit else None


class Output:
    """Where a command's answer goes: JSON for scripts, text for people."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, data: Any, text: Callable[[], str]) -> None:
        if self.as_json:
            print(json.dumps(to_jsonable(data), ensure_ascii=False, allow_nan=False, indent=2))
        else:
            print(text())


# -------------------------------------------------------------- arguments
def parse_time(text: str) -> dt.datetime | dt.date:
    """``YYYY-MM-DD`` (a whole day) or an ISO 8601 moment; a moment without a zone is UTC."""
    text = text.strip()
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        moment = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError as e:
        raise ValidationError(f"not a date or ISO 8601 time: {text!r}", value=text) from e
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _open(args: argparse.Namespace, *, create: bool = False) -> Tracker:
    """The ledger named by ``--uri`` / ``MODELTRAIL_URI``; created only for imports (otherwise ``db upgrade`` does)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from .._tracker import Tracker

    uri = resolve_uri(args.uri)
    try:
        url = make_url(uri)
    except ArgumentError as e:
        raise ConfigurationError(f"not a database URL: {mask_password(uri)!r}", value=mask_password(uri)) from e
    database = url.database or ""
    if (
        not create
        and url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
        and not os.path.exists(database)
    ):
        raise ConfigurationError(
            f"no modeltrail database at {database!r}: log a training first, or create it with `modeltrail db upgrade`",
            value=database,
        )
    return Tracker(uri, create=create, spool=False)  # a command answers now or fails: no offline spool


def _open_unchecked(args: argparse.Namespace) -> Store:
    """A store at whatever schema revision it is: checking and upgrading it is the caller's job."""
    from .._store import Store

    return Store(resolve_uri(args.uri), create=False, check=False)


# ---------------------------------------------------------------- commands
def cmd_models(args: argparse.Namespace, out: Output) -> int:
    tracker = _open(args)
    rows = tracker.models(framework=args.framework, model_type=args.type, tag=args.tag, name=args.name)
    out.emit(
        rows,
        lambda: (
            table(
                [
                    (
                        r.id,
                        r.name,
                        r.framework,
                        r.model_type,
                        r.latest_version,
                        ", ".join(f"{k}={v}" for k, v in sorted(r.tags.items())),
                    )
                    for r in rows
                ],
                ["id", "name", "framework", "type", "latest", "tags"],
            )
            if rows
            else "no models match"
        ),
    )
    return 0


def _metrics_text(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt(m.last)}" for k, m in sorted(metrics.items())) or "-"


def cmd_show(args: argparse.Namespace, out: Output) -> int:
    details = _open(args).show(args.model)

    def text() -> str:
        m = details.model
        lines = [
            f"model {m.name} (id {m.id})",
            f"  framework    {fmt(m.framework)}",
            f"  type         {fmt(m.model_type)}",
            f"  description  {fmt(m.description)}",
            f"  tags         {fmt([f'{k}={v}' for k, v in sorted(m.tags.items())])}",
            f"  created      {fmt(m.created_at)}",
            f"  versions     {len(details.versions)}",
        ]
        if details.deployments:
            lines.append("serving now:")
            lines += [
                f"  {d.environment}: version {d.version} since {fmt(d.deployed_at)}"
                + (f" at {d.endpoint}" if d.endpoint else "")
                for d in details.deployments
            ]
        else:
            lines.append("serving now: nowhere")
        if details.versions:
            rows = []
            for v in details.versions:
                t = v.training
                data = f"{t.dataset.name}@{t.dataset.digest[:8]}" if t.dataset else None
                artifact = f"{t.artifact_path} (sha256 {t.artifact_sha256[:12]})" if t.artifact_sha256 else None
                rows.append(
                    (
                        v.version.number,
                        t.id,
                        t.started_at,
                        t.duration_s,
                        data,
                        _short(t.git_commit),
                        v.environments,
                        artifact,
                        _metrics_text(t.metrics),
                    )
                )
            lines.append("versions:")
            headers = ["version", "training", "started", "seconds", "dataset", "commit", "serving", "artifact"]
            lines.append(table(rows, [*headers, "final metrics"]))
        return "\n".join(lines)

    out.emit(details, text)
    return 0


def _diff_text(diff: dict[str, Any]) -> str:
    parts = [f"+{k}" for k in diff.get("added", {})]
    parts += [f"-{k}" for k in diff.get("removed", {})]
    parts += [f"~{k}" for k in diff.get("changed", {})]
    return " ".join(parts) or "-"


def cmd_versions(args: argparse.Namespace, out: Output) -> int:
    rows = _open(args).versions(args.model)
    out.emit(
        rows,
        lambda: (
            table(
                [(v.number, v.training_id, v.created_at, v.parent_number, _diff_text(v.param_diff)) for v in rows],
                ["version", "training", "created", "parent", "param changes"],
            )
            if rows
            else f"model {args.model!r} has no versions yet"
        ),
    )
    return 0


def cmd_compare(args: argparse.Namespace, out: Output) -> int:
    c = _open(args).compare(args.model, args.a, args.b)

    def text() -> str:
        a, b = f"v{c.a}", f"v{c.b}"
        lines = [f"{c.model}: version {c.a} -> version {c.b}", "params:"]
        prow = [(k, "added", None, v) for k, v in c.params["added"].items()]
        prow += [(k, "removed", v, None) for k, v in c.params["removed"].items()]
        prow += [(k, "changed", v["old"], v["new"]) for k, v in c.params["changed"].items()]
        lines.append(_indent(table(sorted(prow), ["param", "change", a, b])) if prow else "  no changes")
        lines.append("metrics:")
        if c.metrics:
            mrow = [
                (m.key, m.mode, m.last_a, m.last_b, m.last_delta, m.best_a, m.best_b, m.best_delta) for m in c.metrics
            ]
            headers = ["metric", "best is", f"final {a}", f"final {b}", "change", f"best {a}", f"best {b}", "change"]
            lines.append(_indent(table(mrow, headers)))
        else:
            lines.append("  none in common")
        if c.metrics_only_a:
            lines.append(f"  only in {a}: {', '.join(c.metrics_only_a)}")
        if c.metrics_only_b:
            lines.append(f"  only in {b}: {', '.join(c.metrics_only_b)}")
        da = f"{c.dataset_a.name}@{c.dataset_a.digest[:12]}" if c.dataset_a else "-"
        db = f"{c.dataset_b.name}@{c.dataset_b.digest[:12]}" if c.dataset_b else "-"
        lines.append(f"dataset: {da} -> {db} (changed)" if c.dataset_changed else f"dataset: same ({da})")
        delta = f" ({c.duration_delta:+.3g}s)" if c.duration_delta is not None else ""
        lines.append(f"duration: {fmt(c.duration_a)}s -> {fmt(c.duration_b)}s{delta}")
        if c.code_changed:
            lines.append(f"code: {fmt(_short(c.commit_a))} -> {fmt(_short(c.commit_b))} (changed)")
        else:
            lines.append(f"code: same commit ({fmt(_short(c.commit_a))})")
        if c.evaluations:
            lines.append("evaluations (latest on each dataset):")
            erow = [(e.dataset, e.key, e.mode, e.value_a, e.value_b, e.delta) for e in c.evaluations]
            lines.append(_indent(table(erow, ["dataset", "metric", "best is", a, b, "change"])))
        return "\n".join(lines)

    out.emit(c, text)
    return 0


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def cmd_best(args: argparse.Namespace, out: Output) -> int:
    e = _open(args).best_version(args.model, metric=args.metric, mode=args.mode, by=args.by, dataset=args.dataset)
    how = "best over its history" if args.by == "best" else "final value"
    if args.dataset is not None:
        how = f"latest evaluation on {args.dataset}"
    serving = f"; serving in {', '.join(e.environments)}" if e.environments else ""
    out.emit(e, lambda: f"{e.model} version {e.version}: {e.metric} = {fmt(e.value)} ({how}, step {e.step}){serving}")
    return 0


def cmd_leaderboard(args: argparse.Namespace, out: Output) -> int:
    rows = _open(args).leaderboard(
        args.model, args.metric, mode=args.mode, by=args.by, limit=args.limit, dataset=args.dataset
    )
    out.emit(
        rows,
        lambda: (
            table(
                [(r.rank, r.version, r.value, r.step, r.last, r.best, r.training_id, r.environments) for r in rows],
                ["rank", "version", args.metric, "step", "final", "best", "training", "serving"],
            )
            if rows
            else f"no version of {args.model!r} logged metric {args.metric!r}"
        ),
    )
    return 0


def cmd_history(args: argparse.Namespace, out: Output) -> int:
    tracker = _open(args)
    if args.across_versions or args.all_versions:
        if not args.metric or len(args.metric) != 1:
            raise ValidationError("--across-versions and --all-versions need exactly one --metric")
        metric = args.metric[0]
        if args.across_versions:
            summary = tracker.metric_by_version(args.model, metric, mode=args.mode)
            out.emit(
                summary,
                lambda: (
                    table(
                        [
                            (r.version, r.count, r.last, r.last_step, r.best, r.best_step, r.environments)
                            for r in summary
                        ],
                        ["version", "points", "final", "step", f"best ({summary[0].mode})", "step", "serving"],
                    )
                    if summary
                    else f"no version of {args.model!r} logged metric {metric!r}"
                ),
            )
            return 0
        points = tracker.metric_curves(args.model, metric)
    else:
        points = tracker.version_history(args.model, args.version, metrics=args.metric)
    out.emit(
        points,
        lambda: (
            table(
                [(p.version, p.metric, p.step, p.value, p.timestamp) for p in points],
                ["version", "metric", "step", "value", "time"],
            )
            if points
            else "no metric points"
        ),
    )
    return 0


def _deployment_line(d: Any) -> str:
    return f"deployment {d.id}: {d.model} version {d.version} in {d.environment}"


def cmd_deploy(args: argparse.Namespace, out: Output) -> int:
    d = _open(args).deploy(
        args.model, args.version, args.env, endpoint=args.endpoint, reason=args.reason, deployed_by=args.by
    )
    replaced = f" (supersedes deployment {d.replaces_id})" if d.replaces_id else ""
    out.emit(d, lambda: f"deployed: {_deployment_line(d)}{replaced}")
    return 0


def cmd_rollback(args: argparse.Namespace, out: Output) -> int:
    d = _open(args).rollback(args.model, args.env, reason=args.reason, deployed_by=args.by)
    out.emit(d, lambda: f"rolled back deployment {d.rollback_of_id}: now {_deployment_line(d)}")
    return 0


def cmd_undeploy(args: argparse.Namespace, out: Output) -> int:
    d = _open(args).undeploy(args.model, args.env, version=args.version, reason=args.reason, deployed_by=args.by)
    out.emit(
        d, lambda: f"retired deployment {d.replaces_id}: {d.model} version {d.version} no longer in {d.environment}"
    )
    return 0


_DEPLOYMENT_HEADERS = ["id", "model", "environment", "version", "status", "action", "deployed", "ended", "by", "reason"]


def _deployment_rows(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [
        (
            d.id,
            d.model,
            d.environment,
            d.version,
            d.status,
            d.action,
            d.deployed_at,
            d.ended_at,
            d.deployed_by,
            d.reason,
        )
        for d in rows
    ]


def cmd_deployments(args: argparse.Namespace, out: Output) -> int:
    tracker = _open(args)
    if args.at is not None:
        if args.model is None:
            raise ValidationError("--at needs a model")
        moment = parse_time(args.at)
        envs = [args.env] if args.env else sorted({d.environment for d in tracker.deployments(args.model)})
        found = {env: tracker.deployment(args.model, env, at=moment) for env in envs}
        if args.version is not None:
            found = {env: d for env, d in found.items() if d is not None and d.version == args.version}
        out.emit(
            found,
            lambda: (
                table(
                    [
                        (env, d.version if d else None, d.id if d else None, d.deployed_at if d else None)
                        for env, d in found.items()
                    ],
                    ["environment", "version", "deployment", "since"],
                )
                if found
                else "no deployments"
            ),
        )
        return 0
    status = "active" if args.current else args.status
    rows = tracker.deployments(args.model, environment=args.env, version=args.version, status=status)
    out.emit(rows, lambda: table(_deployment_rows(rows), _DEPLOYMENT_HEADERS) if rows else "no deployments")
    return 0


def cmd_audit(args: argparse.Namespace, out: Output) -> int:
    since = parse_time(args.since) if args.since else None
    rows = _open(args).audit(
        action=args.action, entity=args.entity, entity_id=args.entity_id, since=since, limit=args.limit
    )
    out.emit(
        rows,
        lambda: (
            table(
                [(r.id, r.at, r.action, r.entity, r.entity_id, r.os_user, r.host, r.after) for r in rows],
                ["id", "at", "action", "entity", "entity id", "user", "host", "after"],
            )
            if rows
            else "no audit events"
        ),
    )
    return 0


def cmd_production(args: argparse.Namespace, out: Output) -> int:
    tracker = _open(args)
    if args.metric and args.env:
        rows = tracker.compare_production(
            args.model, args.env, args.metric, training_metric=args.training_metric, mode=args.mode
        )
        out.emit(
            rows,
            lambda: (
                table(
                    [
                        (
                            r.measured_at,
                            r.version,
                            r.deployment_id,
                            r.value,
                            r.training_last,
                            r.delta_last,
                            r.training_best,
                        )
                        for r in rows
                    ],
                    ["measured", "version", "deployment", args.metric, "training final", "difference", "training best"],
                )
                if rows
                else "no production metrics"
            ),
        )
        return 0
    points = tracker.production_metrics(args.model, environment=args.env, metric=args.metric)
    out.emit(
        points,
        lambda: (
            table(
                [(p.measured_at, p.environment, p.version, p.deployment_id, p.metric, p.value) for p in points],
                ["measured", "environment", "version", "deployment", "metric", "value"],
            )
            if points
            else "no production metrics"
        ),
    )
    return 0


def cmd_plot(args: argparse.Namespace, out: Output) -> int:
    from .._plots import plot_metric

    path = plot_metric(
        _open(args),
        args.model,
        args.metric,
        args.output,
        across_versions=args.across_versions,
        versions=args.versions,
        mode=args.mode,
    )
    out.emit({"path": os.fspath(path)}, lambda: f"wrote {path}")
    return 0


# ------------------------------------------------------------- evaluations
def _metric_pairs(pairs: Sequence[str]) -> dict[str, float]:
    """``KEY=VALUE`` arguments as metrics; ``nan``, ``inf`` and ``-inf`` are numbers too."""
    out: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"--metric takes KEY=VALUE, got {pair!r}", value=pair)
        try:
            out[key] = float(value)
        except ValueError as e:
            raise ValidationError(f"--metric {key}: {value!r} is not a number", value=value) from e
    return out


def _evaluation_rows(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [
        (e.version, e.dataset, (e.dataset_digest or "")[:12] or None, e.evaluated_at, e.evaluated_by, _metrics_line(e))
        for e in rows
    ]


def _metrics_line(e: Any) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in sorted(e.metrics.items())) or "-"


def cmd_evaluate(args: argparse.Namespace, out: Output) -> int:
    e = _open(args).evaluate(
        args.model, version=args.version, dataset=args.dataset, metrics=_metric_pairs(args.metric or []),
        evaluated_by=args.by, description=args.description,
    )  # fmt: skip
    out.emit(e, lambda: f"evaluation {e.id}: {e.model} version {e.version} on {e.dataset}: {_metrics_line(e)}")
    return 0


def cmd_evaluations(args: argparse.Namespace, out: Output) -> int:
    rows = _open(args).evaluations(args.model, version=args.version, dataset=args.dataset)
    headers = ["version", "dataset", "digest", "evaluated", "by", "metrics"]
    out.emit(rows, lambda: table(_evaluation_rows(rows), headers) if rows else "no evaluations")
    return 0


# ------------------------------------------------------------- traceability
def cmd_lineage(args: argparse.Namespace, out: Output) -> int:
    tracker = _open(args)
    if args.dataset is not None:
        if args.model is not None:
            raise ValidationError("give a model (and version), or --dataset DIGEST, not both")
        uses = tracker.trained_on(args.dataset)
        serving = tracker.serving_trained_on(args.dataset)

        def reverse() -> str:
            if not uses:
                return f"no version was trained on a dataset with digest {args.dataset}"
            lines = [f"versions trained on dataset {args.dataset}:"]
            rows = [
                (u.model, u.version, u.training_id, u.dataset.name, u.dataset.digest[:12], u.environments) for u in uses
            ]
            lines.append(_indent(table(rows, ["model", "version", "training", "dataset", "digest", "serving now"])))
            if serving:
                lines.append("serving now:")
                active = [(d.environment, d.model, d.version, d.deployed_at, d.endpoint) for d in serving]
                lines.append(_indent(table(active, ["environment", "model", "version", "since", "endpoint"])))
            else:
                lines.append("serving now: nowhere")
            return "\n".join(lines)

        out.emit({"digest": args.dataset, "versions": uses, "serving": serving}, reverse)
        return 0
    if args.model is None:
        raise ValidationError("lineage needs a model (and optionally a version), or --dataset DIGEST")
    chain = tracker.lineage(args.model, args.version)

    def text() -> str:
        t, v, d = chain.training, chain.version, chain.dataset
        env = chain.environment
        packages = ", ".join(f"{k} {val}" for k, val in sorted((env.get("packages") or {}).items())) or "-"
        lines = [f"{chain.model} version {v.number}"]
        if d is not None:
            shape = f" ({fmt(d.n_rows)} rows, {fmt(d.n_features)} features)" if d.n_rows is not None else ""
            lines.append(f"dataset   {d.name}  sha256 {d.digest}{shape}" + (f"  from {d.source}" if d.source else ""))
        else:
            lines.append("dataset   - (none recorded)")
        lines.append(
            f"  -> training {t.id} ({t.status}) started {fmt(t.started_at)}, {fmt(t.duration_s)}s, "
            f"by {fmt(t.run_by)} on {fmt(t.host)}"
        )
        code = chain.code
        if code:
            lines.append(
                f"     code     commit {fmt(code.get('commit'))} (branch {fmt(code.get('branch'))}, "
                f"dirty: {fmt(code.get('dirty'))})"
            )
        else:
            lines.append(f"     code     commit {fmt(t.git_commit)}")
        command = env.get("command")
        lines.append(f"     command  {shlex.join(str(c) for c in command) if isinstance(command, list) else '-'}")
        lines.append(f"     python   {fmt(env.get('python'))} on {fmt(env.get('platform'))}")
        lines.append(f"     packages {packages}")
        lines.append(f"     params   {', '.join(f'{k}={fmt(val)}' for k, val in sorted(t.params.items())) or '-'}")
        parent = f" (parent {v.parent_number})" if v.parent_number is not None else ""
        lines.append(f"  -> version {v.number}{parent} created {fmt(v.created_at)}, artifact {fmt(v.artifact_path)}")
        if chain.evaluations:
            lines.append("     evaluations:")
            rows = [(e.dataset, e.evaluated_at, _metrics_line(e)) for e in chain.evaluations]
            lines.append(_indent(_indent(_indent(table(rows, ["dataset", "evaluated", "metrics"])))))
        if chain.deployments:
            lines.append("  -> deployments:")
            timeline = [
                (x.environment, x.status, x.action, x.deployed_at, x.ended_at, x.deployed_by) for x in chain.deployments
            ]
            lines.append(
                _indent(_indent(table(timeline, ["environment", "status", "action", "deployed", "ended", "by"])))
            )
        lines.append(f"serving now: {', '.join(chain.environments) or 'nowhere'}")
        return "\n".join(lines)

    out.emit(chain, text)
    return 0


def cmd_reproduce(args: argparse.Namespace, out: Output) -> int:
    tracker = _open(args)
    r = tracker.reproduce(args.model, args.version)
    digest = None
    if args.dataset is not None:
        from .._dataset import Dataset

        digest = Dataset.from_file(args.dataset).digest
    differences = None
    if args.check:
        from .._read.lineage import differences as find_differences

        differences = find_differences(r, dataset_digest=digest)

    def text() -> str:
        lines = [f"to retrain {r.model} version {r.version} (training {r.training_id}):"]
        if r.git_commit:
            dirty = "  # the tree had uncommitted changes, which were not recorded" if r.git_dirty else ""
            where = f"  # in {r.git_root}" if r.git_root else ""
            lines.append(f"  git checkout {r.git_commit}{dirty or where}")
        else:
            lines.append("  # no git commit was recorded")
        if r.cwd:
            lines.append(f"  cd {shlex.quote(r.cwd)}")
        lines.append(f"  {shlex.join(r.command)}" if r.command else "  # no command line was recorded")
        lines.append(f"git commit  {fmt(r.git_commit)} (branch {fmt(r.git_branch)}, dirty: {fmt(r.git_dirty)})")
        lines.append(f"python      {fmt(r.python)} on {fmt(r.platform)}")
        lines.append(f"packages    {' '.join(f'{k}=={v}' for k, v in r.packages.items()) or '-'}")
        lines.append(f"params      {', '.join(f'{k}={fmt(v)}' for k, v in r.params.items()) or '-'}")
        lines.append(f"seeds       {', '.join(f'{k}={fmt(v)}' for k, v in sorted(r.seeds.items())) or '-'}")
        lines.append(f"dataset     {f'{r.dataset.name} sha256 {r.dataset.digest}' if r.dataset else '-'}")
        if differences is not None:
            if differences:
                lines.append(f"{len(differences)} differences from this environment:")
                rows = [(x.what, x.recorded, x.current) for x in differences]
                lines.append(_indent(table(rows, ["what", "recorded", "now"])))
            else:
                lines.append("no differences from this environment")
        return "\n".join(lines)

    data: Any = r if differences is None else {"reproduction": r, "differences": differences}
    out.emit(data, text)
    return 1 if differences else 0


# ------------------------------------------------------------- exchange
def cmd_export(args: argparse.Namespace, out: Output) -> int:
    from .._exchange.export import dumps, export_version, version_numbers

    tracker = _open(args)
    store = tracker.store
    with store.transaction(read_only=True) as s:
        name, numbers = version_numbers(s, args.model, args.version)
    written: list[str] = []
    target = None
    if args.output and args.output != "-":
        target = open(args.output, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    try:
        with Progress(f"exporting {name}", total=len(numbers), unit="versions") as bar:
            for number in numbers:
                with store.transaction(read_only=True) as s:
                    document = export_version(s, name, number)
                if args.dir:
                    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._") or "model"
                    path = os.path.join(args.dir, f"{safe}-v{number}.json")
                    with open(path, "w", encoding="utf-8") as fh:
                        fh.write(dumps(document, indent=2) + "\n")
                    written.append(path)
                else:
                    (target or sys.stdout).write(dumps(document) + "\n")
                bar.advance()
    finally:
        if target is not None:
            target.close()
    if args.dir or target is not None:
        result = {"model": name, "versions": numbers, "files": written or [args.output]}
        where = args.dir if args.dir else args.output
        out.emit(result, lambda: f"exported {len(numbers)} versions of {name} to {where}")
    return 0


def cmd_import(args: argparse.Namespace, out: Output) -> int:
    from .._exchange.imports import import_documents, parse_documents, read_documents

    documents: list[dict[str, Any]] = []
    for path in args.files:
        documents += parse_documents(sys.stdin.read(), source="<stdin>") if path == "-" else read_documents(path)
    tracker = _open(args, create=True)
    source = ", ".join(os.path.basename(p) for p in args.files)
    with Progress("importing", total=len(documents), unit="versions") as bar:
        result = import_documents(
            tracker.store, documents, deployments=not args.no_deployments, source=source, on_document=bar.advance
        )
    out.emit(
        dict(result),
        lambda: (
            f"imported {len(result['imported'])} versions"
            + (f" ({', '.join(f'{m} v{n}' for m, n in result['imported'])})" if result["imported"] else "")
            + (f"; {len(result['skipped'])} already there" if result["skipped"] else "")
        ),
    )
    return 0


def cmd_import_mlflow(args: argparse.Namespace, out: Output) -> int:
    from .._exchange.mlflow import import_mlflow

    tracker = _open(args, create=True)
    with Progress(f"importing {mask_password(args.source)}", unit="runs") as bar:

        def progress(done: int, total: int) -> None:
            if bar.total != total:
                bar.set_total(total)
            bar.advance(done - bar.done)

        result = import_mlflow(tracker.store, args.source, batch_size=args.batch_size, on_progress=progress)
    out.emit(
        result,
        lambda: (
            f"imported from {result.source}: {result.trainings} runs as trainings, {result.versions} as versions "
            f"of {len(result.models)} models, {result.metric_points} metric points; {result.skipped} already there"
        ),
    )
    return 0


def cmd_db_upgrade(args: argparse.Namespace, out: Output) -> int:
    store = _open_unchecked(args)
    try:
        with Progress(f"upgrading the schema of {store.display_uri}"):
            before, after = store.upgrade(args.revision)
    finally:
        store.close()
    result = {"uri": store.display_uri, "from": before, "to": after}
    message = (
        f"{store.display_uri}: already at {after}"
        if before == after
        else f"{store.display_uri}: {before or 'empty'} -> {after}"
    )
    out.emit(result, lambda: message)
    return 0


def cmd_db_current(args: argparse.Namespace, out: Output) -> int:
    from .. import _migrations as migrations

    store = _open_unchecked(args)
    try:
        current = migrations.current_revision(store.engine)
    except Exception as e:
        from sqlalchemy.exc import DBAPIError

        if isinstance(e, DBAPIError):
            raise store.translate(e) from e
        raise
    finally:
        store.close()
    head = migrations.head_revision()
    state = "up to date" if current == head else "no modeltrail schema" if current is None else "outdated"
    result = {"uri": store.display_uri, "current": current, "head": head, "state": state}
    hint = "" if current == head else ": run `modeltrail db upgrade`"
    out.emit(result, lambda: f"{store.display_uri}: {current or '-'} (head {head}, {state}){hint}")
    return 0


def cmd_sync(args: argparse.Namespace, out: Output) -> int:
    """Replay what earlier processes left in the local spool for this database."""
    from .. import _spool as spool
    from .._tracker import Tracker

    uri = resolve_uri(args.uri)
    before = spool.pending(uri)
    with Progress(f"replaying {before} spooled entries into {mask_password(uri)}"):
        tracker = Tracker(uri, spool=True)
        try:
            waiting = tracker.sync(timeout=args.timeout)
        finally:
            tracker.close()
    left = spool.pending(uri)
    result = {"uri": mask_password(uri), "replayed": max(before - left, 0), "waiting": max(left, waiting)}
    out.emit(
        result, lambda: f"{result['uri']}: replayed {result['replayed']} spooled entries, {result['waiting']} wait"
    )
    return 0 if result["waiting"] == 0 else EXIT_ERROR


def cmd_db_grants(args: argparse.Namespace, out: Output) -> int:
    from sqlalchemy.engine import make_url

    from .._grants import grant_statements

    database = args.database or make_url(resolve_uri(args.uri)).database or ""
    statements = grant_statements(
        database, writer=args.writer, operator=args.operator, analyst=args.analyst, host=args.host
    )
    out.emit({"database": database, "statements": statements}, lambda: "\n".join(statements))
    return 0


def cmd_ui(args: argparse.Namespace, out: Output) -> int:
    try:
        from ..ui.server import serve
    except ModuleNotFoundError as e:
        raise ConfigurationError(f'`modeltrail ui` needs the web extra: pip install "modeltrail[ui]" ({e})') from e
    serve(args.uri, host=args.host, port=args.port, token=args.token)
    return 0


def cmd_run(args: argparse.Namespace, out: Output) -> int:
    try:
        from ..integrations.autolog import run_script
    except ModuleNotFoundError as e:
        raise ConfigurationError(f"`modeltrail run` is unavailable: {e}") from e
    script_args = list(args.args)
    if script_args[:1] == ["--"]:
        script_args = script_args[1:]
    return int(run_script(args.script, script_args, uri=args.uri, model=args.model))


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    # --uri and --json work before or after the command: the sub-parsers' copies must not
    # overwrite a value given before the command with their default, hence SUPPRESS.
    common = _Parser(add_help=False)
    common.add_argument(
        "--uri", default=argparse.SUPPRESS, help="database URL (default: $MODELTRAIL_URI or ./modeltrail.db)"
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts")

    parser = _Parser(
        prog="modeltrail",
        description="Ask the modeltrail ledger about models, versions, metrics and deployments.",
    )
    parser.add_argument("--uri", default=None, help="database URL (default: $MODELTRAIL_URI or ./modeltrail.db)")
    parser.add_argument("--json", action="store_true", default=False, help="print JSON for scripts")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, handler: Callable[[argparse.Namespace, Output], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    def mode_by(p: argparse.ArgumentParser, *, by: bool = True, mode_default: str | None = "max") -> None:
        p.add_argument("--mode", choices=["max", "min"], default=mode_default, help="which direction is better")
        if by:
            p.add_argument(
                "--by",
                choices=["best", "last"],
                default="best",
                help="rank by each training's best value over its history, or its last value",
            )

    p = add("models", cmd_models, "list models, filtered by framework, type, tag or name")
    p.add_argument("--framework")
    p.add_argument("--type", help="model type")
    p.add_argument("--tag", help="KEY or KEY=VALUE")
    p.add_argument("--name", help="a part of the name")

    p = add("show", cmd_show, "a model with its versions, their trainings, datasets, artifacts and deployments")
    p.add_argument("model")

    p = add("versions", cmd_versions, "a model's versions with their param changes")
    p.add_argument("model")

    p = add("compare", cmd_compare, "what changed between two versions: params, metrics, dataset, duration, code")
    p.add_argument("model")
    p.add_argument("a", type=int, metavar="A")
    p.add_argument("b", type=int, metavar="B")

    p = add("best", cmd_best, "the best version by a metric")
    p.add_argument("model")
    p.add_argument("--metric", required=True)
    p.add_argument("--dataset", help="rank by the latest evaluation on this dataset instead of training metrics")
    mode_by(p)

    p = add("leaderboard", cmd_leaderboard, "all versions ranked by a metric")
    p.add_argument("model")
    p.add_argument("--metric", required=True)
    p.add_argument("--limit", type=int)
    p.add_argument("--dataset", help="rank by the latest evaluation on this dataset instead of training metrics")
    mode_by(p)

    p = add("history", cmd_history, "metric points of one version, or of one metric across versions")
    p.add_argument("model")
    p.add_argument("--version", type=int, help="the version (default: the latest)")
    p.add_argument("--metric", action="append", help="only this metric (repeatable)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--all-versions", action="store_true", help="every version's points of one --metric")
    group.add_argument("--across-versions", action="store_true", help="final and best of one --metric per version")
    mode_by(p, by=False, mode_default=None)

    p = add("deploy", cmd_deploy, "deploy a version to an environment (the previous one there is superseded)")
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("--env", "--environment", dest="env", required=True)
    p.add_argument("--endpoint")
    p.add_argument("--reason")
    p.add_argument("--by", help="who deploys (default: the OS user)")

    p = add("rollback", cmd_rollback, "return an environment to the version active before the current one")
    p.add_argument("model")
    p.add_argument("--env", "--environment", dest="env", required=True)
    p.add_argument("--reason")
    p.add_argument("--by")

    p = add("undeploy", cmd_undeploy, "retire what serves an environment")
    p.add_argument("model")
    p.add_argument("--env", "--environment", dest="env", required=True)
    p.add_argument("--version", type=int, help="refuse unless this version is the one serving")
    p.add_argument("--reason")
    p.add_argument("--by")

    p = add("deployments", cmd_deployments, "deployment timelines; what served when; where a version serves")
    p.add_argument("model", nargs="?")
    p.add_argument("--env", "--environment", dest="env")
    p.add_argument("--version", type=int)
    p.add_argument("--status", choices=["active", "superseded", "rolled_back", "retired"])
    p.add_argument("--current", action="store_true", help="only what serves now")
    p.add_argument("--at", help="what served at this time (YYYY-MM-DD = end of that day, UTC)")

    p = add("audit", cmd_audit, "the audit trail, newest first")
    p.add_argument("--action", help="exact action, or a prefix ending in * (deployment.*)")
    p.add_argument("--entity")
    p.add_argument("--entity-id")
    p.add_argument("--since", help="YYYY-MM-DD or ISO 8601 time")
    p.add_argument("--limit", type=int, default=50)

    p = add("production", cmd_production, "production metrics, beside training metrics with --env and --metric")
    p.add_argument("model")
    p.add_argument("--env", "--environment", dest="env")
    p.add_argument("--metric")
    p.add_argument("--training-metric", help="the training metric to compare with (default: the same name)")
    mode_by(p, by=False, mode_default=None)

    p = add("plot", cmd_plot, "draw a metric: each version's curve, or final and best per version")
    p.add_argument("model")
    p.add_argument("--metric", required=True)
    p.add_argument("-o", "--output", required=True, help="image file (.png, .svg, .pdf)")
    p.add_argument("--across-versions", action="store_true", help="final and best per version, deployed ones marked")
    p.add_argument("--versions", type=int, nargs="+", help="only these versions")
    mode_by(p, by=False, mode_default=None)

    db = sub.add_parser("db", help="database schema: upgrade, current, grants", description="database schema")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", parser_class=_Parser)
    db_sub.required = True
    p = db_sub.add_parser("upgrade", parents=[common], help="create the schema or migrate it to the newest revision")
    p.add_argument("--revision", default="head")
    p.set_defaults(handler=cmd_db_upgrade)
    p = db_sub.add_parser("current", parents=[common], help="the schema revision of the database")
    p.set_defaults(handler=cmd_db_current)
    p = db_sub.add_parser("grants", parents=[common], help="least-privilege GRANT statements for MySQL/MariaDB")
    p.add_argument("--database", help="the database (default: the one in --uri)")
    p.add_argument("--writer", default="modeltrail_writer", help="user for training jobs")
    p.add_argument("--operator", default="modeltrail_operator", help="user who deploys and rolls back")
    p.add_argument("--analyst", default="modeltrail_analyst", help="read-only user")
    p.add_argument("--host", default="%", help="the users' host part")
    p.set_defaults(handler=cmd_db_grants)

    p = add("evaluate", cmd_evaluate, "record metrics of an existing version measured on a named dataset")
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("--dataset", required=True, help="the dataset's name (a test set, a new month of data)")
    p.add_argument("--metric", action="append", required=True, metavar="KEY=VALUE", help="repeatable")
    p.add_argument("--by", help="who evaluated (default: the OS user)")
    p.add_argument("--description")

    p = add("evaluations", cmd_evaluations, "evaluations of a model's versions on named datasets")
    p.add_argument("model")
    p.add_argument("--version", type=int)
    p.add_argument("--dataset")

    p = add("lineage", cmd_lineage, "dataset -> training -> version -> deployments; or what used a dataset")
    p.add_argument("model", nargs="?")
    p.add_argument("version", nargs="?", type=int, help="default: the latest")
    p.add_argument("--dataset", metavar="DIGEST", help="versions trained on this dataset digest (or prefix)")

    p = add("reproduce", cmd_reproduce, "what retraining a version needs; --check compares with this environment")
    p.add_argument("model")
    p.add_argument("version", nargs="?", type=int, help="default: the latest")
    p.add_argument("--check", action="store_true", help="list every difference; exit status 1 when there are some")
    p.add_argument("--dataset", metavar="PATH", help="with --check: compare this file's digest with the recorded one")

    p = add("export", cmd_export, "one JSON document per version (JSON Lines on stdout, or files)")
    p.add_argument("model")
    p.add_argument("--version", type=int, help="only this version")
    group = p.add_mutually_exclusive_group()
    group.add_argument("-o", "--output", help="a JSON Lines file (default: stdout)")
    group.add_argument("--dir", help="a directory: one pretty-printed <model>-v<N>.json per version")

    p = add("import", cmd_import, "load exported documents into this ledger (all or nothing)")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON / JSON Lines files or directories; - for stdin")
    p.add_argument("--no-deployments", action="store_true", help="leave the deployment history out")

    p = add("import-mlflow", cmd_import_mlflow, "import a MLflow SQL tracking store: runs, metrics, registered models")
    p.add_argument(
        "--from", dest="source", required=True, metavar="URL", help="MLflow's database, e.g. sqlite:///mlflow.db"
    )
    p.add_argument("--batch-size", type=int, default=100, help="runs per transaction")

    p = add("sync", cmd_sync, "replay work spooled locally while the database was unreachable")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the database")

    p = add("ui", cmd_ui, "a read-only web dashboard over the ledger")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (not loopback: needs a token)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default=None, help="required for non-local binding (or $MODELTRAIL_UI_TOKEN)")

    p = add("run", cmd_run, "run a Python script with autologging into the ledger")
    p.add_argument("--model", help="model name for every fit (default: each estimator's or module's class name)")
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        print(f"modeltrail: error: {mask_password(str(e))}", file=sys.stderr)
        return EXIT_ERROR
    except SystemExit as e:  # --help
        return int(e.code or 0)
    out = Output(args.json)
    try:
        return int(args.handler(args, out))
    except ModeltrailError as e:
        message = " ".join(mask_password(str(e)).split())
        print(f"modeltrail: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
