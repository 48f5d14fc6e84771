"""Commands that move versions between ledgers: export, import, import-mlflow."""

from __future__ import annotations

import argparse
import os
import sys

from .._config import mask_password
from .._progress import Progress
from .options import Commands, follow, open_ledger
from .output import Output, count


def cmd_export(args: argparse.Namespace, out: Output) -> int:
    tracker = open_ledger(args)
    path = args.output if args.output and args.output != "-" else None
    with Progress(f"exporting {args.model}", unit="versions") as bar:
        result = tracker.export_to(
            args.model, version=args.version, path=path, directory=args.dir, stream=sys.stdout,
            on_progress=follow(bar),
        )  # fmt: skip
    if args.dir or path is not None:
        where = args.dir or path
        out.emit(result, lambda: f"exported {count(len(result.versions), 'version')} of {result.model} to {where}")
    return 0


def cmd_import(args: argparse.Namespace, out: Output) -> int:
    from .._tracker import Tracker

    documents = Tracker.read_documents(args.files, stdin=sys.stdin)  # all read before the ledger is opened
    tracker = open_ledger(args, create=True)
    source = ", ".join(os.path.basename(p) for p in args.files)
    with Progress("importing", total=len(documents), unit="versions") as bar:
        result = tracker.import_documents(
            documents, deployments=not args.no_deployments, source=source, on_progress=follow(bar)
        )
    out.emit(
        result,
        lambda: (
            f"imported {count(len(result['imported']), 'version')}"
            + (f" ({', '.join(f'{m} v{n}' for m, n in result['imported'])})" if result["imported"] else "")
            + (f"; {len(result['skipped'])} already there" if result["skipped"] else "")
        ),
    )
    return 0


def cmd_import_mlflow(args: argparse.Namespace, out: Output) -> int:
    tracker = open_ledger(args, create=True)
    with Progress(f"importing {mask_password(args.source)}", unit="runs") as bar:
        result = tracker.import_mlflow(args.source, batch_size=args.batch_size, on_progress=follow(bar))
    out.emit(
        result,
        lambda: (
            f"imported from {result.source}: {count(result.trainings, 'run')} as trainings, "
            f"{result.versions} as versions of {count(len(result.models), 'model')}, "
            f"{count(result.metric_points, 'metric point')}; "
            f"{result.skipped} already there"
        ),
    )
    return 0


def register(commands: Commands) -> None:
    p = commands.add("export", cmd_export, "one JSON document per version (JSON Lines on stdout, or files)")
    p.add_argument("model")
    p.add_argument("--version", type=int, help="only this version")
    group = p.add_mutually_exclusive_group()
    group.add_argument("-o", "--output", help="a JSON Lines file (default: stdout)")
    group.add_argument("--dir", help="a directory: one pretty-printed <model>-v<N>.json per version")

    p = commands.add("import", cmd_import, "load exported documents into this ledger (all or nothing)")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON / JSON Lines files or directories; - for stdin")
    p.add_argument("--no-deployments", action="store_true", help="leave the deployment history out")

    p = commands.add(
        "import-mlflow", cmd_import_mlflow, "import a MLflow SQL tracking store: runs, metrics, registered models"
    )
    p.add_argument(
        "--from", dest="source", required=True, metavar="URL", help="MLflow's database, e.g. sqlite:///mlflow.db"
    )
    p.add_argument("--batch-size", type=int, default=100, help="runs per transaction")
