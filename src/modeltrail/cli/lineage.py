"""Commands about evidence and traceability: evaluate, evaluations, lineage, reproduce."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from .. import Dataset
from .._errors import ValidationError
from .options import Commands, metric_pairs, open_ledger
from .output import Output, count, fmt, indent, pairs, table


def cmd_evaluate(args: argparse.Namespace, out: Output) -> int:
    e = open_ledger(args).evaluate(
        args.model, version=args.version, dataset=args.dataset, metrics=metric_pairs(args.metric or []),
        evaluated_by=args.by, description=args.description,
    )  # fmt: skip
    out.emit(e, lambda: f"evaluation {e.id}: {e.model} version {e.version} on {e.dataset}: {pairs(e.metrics)}")
    return 0


def cmd_evaluations(args: argparse.Namespace, out: Output) -> int:
    out.rows(
        open_ledger(args).evaluations(args.model, version=args.version, dataset=args.dataset),
        ["version", "dataset", "digest", "evaluated", "by", "metrics"],
        lambda e: (
            e.version, e.dataset, (e.dataset_digest or "")[:12] or None, e.evaluated_at, e.evaluated_by,
            pairs(e.metrics),
        ),
        "no evaluations",
    )  # fmt: skip
    return 0


def _reverse_lineage(args: argparse.Namespace, out: Output) -> int:
    """What was trained on a dataset digest, and where it serves now."""
    if args.model is not None:
        raise ValidationError("give a model (and version), or --dataset DIGEST, not both")
    tracker = open_ledger(args)
    uses = tracker.trained_on(args.dataset)
    serving = tracker.serving_trained_on(args.dataset)

    def text() -> str:
        if not uses:
            return f"no version was trained on a dataset with digest {args.dataset}"
        lines = [f"versions trained on dataset {args.dataset}:"]
        rows = [
            (u.model, u.version, u.training_id, u.dataset.name, u.dataset.digest[:12], u.environments) for u in uses
        ]
        lines.append(indent(table(rows, ["model", "version", "training", "dataset", "digest", "serving now"])))
        if serving:
            lines.append("serving now:")
            active = [(d.environment, d.model, d.version, d.deployed_at, d.endpoint) for d in serving]
            lines.append(indent(table(active, ["environment", "model", "version", "since", "endpoint"])))
        else:
            lines.append("serving now: nowhere")
        return "\n".join(lines)

    out.emit({"digest": args.dataset, "versions": uses, "serving": serving}, text)
    return 0


def cmd_lineage(args: argparse.Namespace, out: Output) -> int:
    if args.dataset is not None:
        return _reverse_lineage(args, out)
    if args.model is None:
        raise ValidationError("lineage needs a model (and optionally a version), or --dataset DIGEST")
    chain = open_ledger(args).lineage(args.model, args.version)

    def text() -> str:
        t, v, d = chain.training, chain.version, chain.dataset
        env = chain.environment
        packages = pairs(env.get("packages") or {}, sep=" ")
        lines = [f"{chain.model} version {v.number}"]
        if d is not None:
            features = count(d.n_features, "feature") if d.n_features is not None else "- features"
            shape = f" ({count(d.n_rows, 'row')}, {features})" if d.n_rows is not None else ""
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
        lines.append(f"     params   {pairs(t.params)}")
        resumed = (t.context or {}).get("resumed_from")
        if isinstance(resumed, dict):  # a fit resumed from a checkpoint (Lightning's fit(ckpt_path=...))
            origin = f", training {resumed['training']}" if resumed.get("training") is not None else ""
            origin += f" (version {resumed['version']})" if resumed.get("version") is not None else ""
            lines.append(f"     resumed  {fmt(resumed.get('path'))} sha256 {fmt(resumed.get('sha256'))}{origin}")
        parent = f" (parent {v.parent_number})" if v.parent_number is not None else ""
        lines.append(f"  -> version {v.number}{parent} created {fmt(v.created_at)}, artifact {fmt(v.artifact_path)}")
        if chain.evaluations:
            lines.append("     evaluations:")
            rows = [(e.dataset, e.evaluated_at, pairs(e.metrics)) for e in chain.evaluations]
            lines.append(indent(table(rows, ["dataset", "evaluated", "metrics"]), 3))
        if chain.deployments:
            lines.append("  -> deployments:")
            timeline = [
                (x.environment, x.status, x.action, x.deployed_at, x.ended_at, x.deployed_by) for x in chain.deployments
            ]
            lines.append(indent(table(timeline, ["environment", "status", "action", "deployed", "ended", "by"]), 2))
        lines.append(f"serving now: {', '.join(chain.environments) or 'nowhere'}")
        return "\n".join(lines)

    out.emit(chain, text)
    return 0


def cmd_reproduce(args: argparse.Namespace, out: Output) -> int:
    tracker = open_ledger(args)
    r = tracker.reproduce(args.model, args.version)
    digest = Dataset.from_file(args.dataset).digest if args.dataset is not None else None
    differences = tracker.reproduce_check(args.model, args.version, dataset_digest=digest) if args.check else None

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
        lines.append(f"seeds       {pairs(r.seeds)}")
        lines.append(f"dataset     {f'{r.dataset.name} sha256 {r.dataset.digest}' if r.dataset else '-'}")
        if differences is not None:
            if differences:
                lines.append(f"{count(len(differences), 'difference')} from this environment:")
                rows = [(x.what, x.recorded, x.current) for x in differences]
                lines.append(indent(table(rows, ["what", "recorded", "now"])))
            else:
                lines.append("no differences from this environment")
        return "\n".join(lines)

    data: Any = r if differences is None else {"reproduction": r, "differences": differences}
    out.emit(data, text)
    return 1 if differences else 0


def register(commands: Commands) -> None:
    add = commands.add
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
