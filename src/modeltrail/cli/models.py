"""Commands about models and their versions: list, show, versions, compare, best, leaderboard, history, plot."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from .._errors import ValidationError
from .options import Commands, mode_by, open_ledger
from .output import Output, fmt, indent, pairs, short, table, to_jsonable

if TYPE_CHECKING:
    from .._records import TrainingCounts
    from .._tracker import Tracker


def _tags(tags: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))


def cmd_models(args: argparse.Namespace, out: Output) -> int:
    rows = open_ledger(args).models(framework=args.framework, model_type=args.type, tag=args.tag, name=args.name)
    out.rows(
        rows,
        ["id", "name", "framework", "type", "latest", "tags"],
        lambda r: (r.id, r.name, r.framework, r.model_type, r.latest_version, _tags(r.tags)),
        "no models match",
    )
    return 0


def _trainings_line(counts: TrainingCounts) -> str:
    """``1 (1 finished without a version)``: trainings a versions table does not show."""
    hidden = ", ".join(f"{n} {status} without a version" for status, n in sorted(counts.without_version.items()))
    return f"{counts.total}" + (f" ({hidden})" if hidden else "")


def cmd_show(args: argparse.Namespace, out: Output) -> int:
    tracker = open_ledger(args)
    details = tracker.show(args.model)
    counts = tracker.training_counts(args.model)
    registry = _registry_of(tracker, args.model)

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
            f"  trainings    {_trainings_line(counts)}",
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
                finals = {k: m.last for k, m in t.metrics.items()}
                rows.append(
                    (v.version.number, t.id, t.started_at, t.duration_s, data, short(t.git_commit), v.environments,
                     artifact, pairs(finals))
                )  # fmt: skip
            lines.append("versions:")
            headers = ["version", "training", "started", "seconds", "dataset", "commit", "serving", "artifact"]
            lines.append(table(rows, [*headers, "final metrics"]))
        lines += _registry_lines(registry)
        if counts.without_version:
            lines.append(f"trainings without a version: `modeltrail trainings {m.name} --where 'version is null'`")
        return "\n".join(lines)

    out.emit({**to_jsonable(details), "trainings": to_jsonable(counts), **to_jsonable(registry)}, text)
    return 0


def _registry_of(tracker: Any, model: str) -> dict[str, Any]:
    """What people added to the versions (aliases, tags, notes) and every version's artifacts."""
    view = tracker.registry_view(model)
    return {"aliases": view.aliases, "version_notes": list(view.notes.values()), "artifacts": view.artifacts}


def _registry_lines(registry: dict[str, Any]) -> list[str]:
    from .artifacts import artifacts_table

    lines = []
    if registry["aliases"]:
        lines.append("aliases: " + ", ".join(f"{a.alias} -> version {a.version}" for a in registry["aliases"]))
    for n in registry["version_notes"]:
        tags = ", ".join(f"{k}={v}" for k, v in sorted(n.tags.items()))
        said = [part for part in (n.description and repr(n.description), tags and f"tags {tags}") if part]
        if said:
            lines.append(f"version {n.version}: {'; '.join(said)}")
    if registry["artifacts"]:
        lines.append("artifacts:")
        rows = registry["artifacts"]
        table_ = artifacts_table(rows).splitlines()
        lines.append("  version  " + table_[0])
        lines += [f"  {str(a.version).ljust(7)}  {line}" for a, line in zip(rows, table_[1:], strict=True)]
    return lines


def _diff_text(diff: dict[str, Any]) -> str:
    parts = [f"+{k}" for k in diff.get("added", {})]
    parts += [f"-{k}" for k in diff.get("removed", {})]
    parts += [f"~{k}" for k in diff.get("changed", {})]
    return " ".join(parts) or "-"


def cmd_versions(args: argparse.Namespace, out: Output) -> int:
    rows = open_ledger(args).versions(args.model)
    out.rows(
        rows,
        ["version", "training", "created", "parent", "param changes"],
        lambda v: (v.number, v.training_id, v.created_at, v.parent_number, _diff_text(v.param_diff)),
        f"model {args.model!r} has no versions yet",
    )
    return 0


def _change(delta: float | None) -> Any:
    """A metric's change as a cell: ``same`` where the comparison found none (equal within float noise)."""
    return "same" if delta == 0 else delta


def cmd_compare(args: argparse.Namespace, out: Output) -> int:
    c = open_ledger(args).compare(args.model, args.a, args.b)

    def text() -> str:
        a, b = f"v{c.a}", f"v{c.b}"
        lines = [f"{c.model}: version {c.a} -> version {c.b}", "params:"]
        prow = [(k, "added", None, v) for k, v in c.params["added"].items()]
        prow += [(k, "removed", v, None) for k, v in c.params["removed"].items()]
        prow += [(k, "changed", v["old"], v["new"]) for k, v in c.params["changed"].items()]
        lines.append(indent(table(sorted(prow), ["param", "change", a, b])) if prow else "  no changes")
        lines.append("metrics:")
        if c.metrics:
            mrow = [
                (m.key, m.mode, m.last_a, m.last_b, _change(m.last_delta), m.best_a, m.best_b, _change(m.best_delta))
                for m in c.metrics
            ]
            headers = ["metric", "best is", f"final {a}", f"final {b}", "change", f"best {a}", f"best {b}", "change"]
            lines.append(indent(table(mrow, headers)))
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
            lines.append(f"code: {fmt(short(c.commit_a))} -> {fmt(short(c.commit_b))} (changed)")
        else:
            lines.append(f"code: same commit ({fmt(short(c.commit_a))})")
        if c.evaluations:
            lines.append("evaluations (latest on each dataset):")
            erow = [(e.dataset, e.key, e.mode, e.value_a, e.value_b, _change(e.delta)) for e in c.evaluations]
            lines.append(indent(table(erow, ["dataset", "metric", "best is", a, b, "change"])))
        return "\n".join(lines)

    out.emit(c, text)
    return 0


def _mode(tracker: Tracker, args: argparse.Namespace, metric: str) -> str:
    """``--mode``, else the model's declared goal for ``metric``, else its name's; else ask for ``--mode``."""
    mode = args.mode or tracker.metric_goal(args.model, metric)
    if mode is None:
        raise ValidationError(
            f"which way is better for {metric!r} is not clear from its name: give --mode max or --mode min "
            f"(or declare it once: tracker.set_metric_goal({args.model!r}, {metric!r}, 'min'))",
            value=metric,
        )
    return mode


def cmd_best(args: argparse.Namespace, out: Output) -> int:
    tracker = open_ledger(args)
    e = tracker.best_version(
        args.model, metric=args.metric, mode=_mode(tracker, args, args.metric), by=args.by, dataset=args.dataset
    )
    how = "best over its history" if args.by == "best" else "final value"
    if args.dataset is not None:
        how = f"latest evaluation on {args.dataset}"
    serving = f"; serving in {', '.join(e.environments)}" if e.environments else ""
    out.emit(e, lambda: f"{e.model} version {e.version}: {e.metric} = {fmt(e.value)} ({how}, step {e.step}){serving}")
    return 0


def cmd_leaderboard(args: argparse.Namespace, out: Output) -> int:
    tracker = open_ledger(args)
    mode = _mode(tracker, args, args.metric)
    rows = tracker.leaderboard(args.model, args.metric, mode=mode, by=args.by, limit=args.limit, dataset=args.dataset)
    out.rows(
        rows,
        ["rank", "version", args.metric, "step", "final", "best", "training", "serving"],
        lambda r: (r.rank, r.version, r.value, r.step, r.last, r.best, r.training_id, r.environments),
        f"no version of {args.model!r} logged metric {args.metric!r}",
    )
    return 0


def cmd_history(args: argparse.Namespace, out: Output) -> int:
    tracker = open_ledger(args)
    if args.across_versions or args.all_versions:
        if not args.metric or len(args.metric) != 1:
            raise ValidationError("--across-versions and --all-versions need exactly one --metric")
        metric = args.metric[0]
        if args.across_versions:
            summary = tracker.metric_by_version(args.model, metric, mode=_mode(tracker, args, metric))
            best = f"best ({summary[0].mode})" if summary else "best"
            out.rows(
                summary,
                ["version", "points", "final", "step", best, "step", "serving"],
                lambda r: (r.version, r.count, r.last, r.last_step, r.best, r.best_step, r.environments),
                f"no version of {args.model!r} logged metric {metric!r}",
            )
            return 0
        points = tracker.metric_curves(args.model, metric)
    else:
        points = tracker.version_history(args.model, args.version, metrics=args.metric)
    out.rows(
        points,
        ["version", "metric", "step", "value", "time"],
        lambda p: (p.version, p.metric, p.step, p.value, p.timestamp),
        "no metric points",
    )
    return 0


def cmd_plot(args: argparse.Namespace, out: Output) -> int:
    tracker = open_ledger(args)
    mode = _mode(tracker, args, args.metric) if args.across_versions else None
    path = tracker.plot(
        args.model, args.metric, args.output, across_versions=args.across_versions, versions=args.versions, mode=mode
    )
    out.emit({"path": os.fspath(path)}, lambda: f"wrote {path}")
    return 0


def register(commands: Commands) -> None:
    add = commands.add
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
    mode_by(p, mode_default=None)

    p = add("leaderboard", cmd_leaderboard, "all versions ranked by a metric")
    p.add_argument("model")
    p.add_argument("--metric", required=True)
    p.add_argument("--limit", type=int)
    p.add_argument("--dataset", help="rank by the latest evaluation on this dataset instead of training metrics")
    mode_by(p, mode_default=None)

    p = add("history", cmd_history, "metric points of one version, or of one metric across versions")
    p.add_argument("model")
    p.add_argument("--version", type=int, help="the version (default: the latest)")
    p.add_argument("--metric", action="append", help="only this metric (repeatable)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--all-versions", action="store_true", help="every version's points of one --metric")
    group.add_argument("--across-versions", action="store_true", help="final and best of one --metric per version")
    mode_by(p, by=False, mode_default=None)

    p = add("plot", cmd_plot, "draw a metric: each version's curve, or final and best per version")
    p.add_argument("model")
    p.add_argument("--metric", required=True)
    p.add_argument("-o", "--output", required=True, help="image file (.png, .svg, .pdf)")
    p.add_argument("--across-versions", action="store_true", help="final and best per version, deployed ones marked")
    p.add_argument("--versions", type=int, nargs="+", help="only these versions")
    mode_by(p, by=False, mode_default=None)
