"""``modeltrail trainings``: every training, failed, running and unversioned ones included, searchable.

The filter language is the one of ``Tracker.trainings(where=...)`` (MLflow's ``search_runs`` style).
"""

from __future__ import annotations

import argparse

from .options import Commands, open_ledger
from .output import Output, pairs

#: Params shown per row in the table; ``--json`` has them all.
PARAMS_SHOWN = 4


def _params(params: dict[str, object]) -> str:
    shown = dict(sorted(params.items())[:PARAMS_SHOWN])
    more = len(params) - len(shown)
    return pairs(shown) + (f" (+{more})" if more > 0 else "")


def cmd_trainings(args: argparse.Namespace, out: Output) -> int:
    rows = open_ledger(args).trainings(
        args.model, status=args.status, where=args.where, order_by=args.order_by, limit=args.limit
    )
    out.rows(
        rows,
        ["id", "model", "version", "status", "started", "seconds", "params", "final metrics"],
        lambda t: (
            t.id, t.model, t.version if t.version is not None else "-", t.status, t.started_at, t.duration_s,
            _params(t.params), pairs({k: m.last for k, m in sorted(t.metrics.items())}),
        ),
        "no trainings match",
    )  # fmt: skip
    return 0


def register(commands: Commands) -> None:
    p = commands.add(
        "trainings", cmd_trainings, "trainings of a model or of all, failed, running and unversioned ones included"
    )
    p.add_argument("model", nargs="?", help="only this model's trainings (default: every model's)")
    p.add_argument("--status", help="finished, failed, pruned or running")
    p.add_argument(
        "--where",
        help="a filter like MLflow's search_runs: \"params.max_depth >= 8 and metrics.val_auc > 0.9 and "
        "status = 'finished'\" (params.KEY, metrics.KEY[.best|.min|.max], tags.KEY, status, model, version, "
        "started_at, duration; = != < <= > >= like in, is null; and, or, not, parentheses)",
    )
    p.add_argument("--order-by", help='e.g. "metrics.val_auc desc, started_at" (default: oldest first)')
    p.add_argument("--limit", type=int, help="at most this many")
