"""Commands about serving: deploy, rollback, undeploy, deployment timelines, production metrics, audit."""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._errors import StorageUnavailableError, ValidationError
from .options import Commands, mode_by, open_ledger, parse_time
from .output import Output, table

if TYPE_CHECKING:
    from .._records import DeploymentRecord
    from .._tracker import Tracker

_DEPLOYMENT_HEADERS = ["id", "model", "environment", "version", "status", "action", "deployed", "ended", "by", "reason"]


def _deployment_line(d: Any) -> str:
    return f"deployment {d.id}: {d.model} version {d.version} in {d.environment}"


#: Tries of a deploy, rollback or undeploy whose connection broke before the answer came back.
ATTEMPTS = 3
#: Seconds before the first retry; doubled for each further one.
RETRY_DELAY_S = 0.5

#: A timeline change: (ledger, expect_version, request_id) -> the entry it wrote.
Change = Callable[["Tracker", "int | None", str], "DeploymentRecord"]


def _guarded(args: argparse.Namespace, change: Change) -> DeploymentRecord:
    """Make a timeline change, retrying it safely when the connection breaks on the way.

    A broken connection (StorageUnavailableError) leaves the outcome unknown: the server may have
    committed before the answer was lost. Every try therefore sends the same request id (made here,
    or ``--request-id``), so a try that already took effect is answered as it was, and every retry
    expects the version this command saw serving before its first try (or ``--expect-version``),
    so it never takes a second step on top of someone else's change.
    """
    tracker = open_ledger(args)
    request_id = args.request_id or uuid.uuid4().hex
    seen = args.expect_version
    if seen is None:
        serving = tracker.deployment(args.model, args.env)
        seen = serving.version if serving is not None else None
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return change(tracker, args.expect_version if attempt == 1 else seen, request_id)
        except StorageUnavailableError:
            if attempt == ATTEMPTS:
                raise
        time.sleep(RETRY_DELAY_S * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def cmd_deploy(args: argparse.Namespace, out: Output) -> int:
    d = _guarded(
        args,
        lambda t, expect, rid: t.deploy(
            args.model, args.version, args.env, endpoint=args.endpoint, reason=args.reason, deployed_by=args.by,
            expect_version=expect, request_id=rid,
        ),
    )  # fmt: skip
    replaced = f" (supersedes deployment {d.replaces_id})" if d.replaces_id else ""
    out.emit(d, lambda: f"deployed: {_deployment_line(d)}{replaced}")
    return 0


def cmd_rollback(args: argparse.Namespace, out: Output) -> int:
    d = _guarded(
        args,
        lambda t, expect, rid: t.rollback(
            args.model, args.env, reason=args.reason, deployed_by=args.by, expect_version=expect, request_id=rid
        ),
    )
    out.emit(d, lambda: f"rolled back deployment {d.rollback_of_id}: now {_deployment_line(d)}")
    return 0


def cmd_undeploy(args: argparse.Namespace, out: Output) -> int:
    d = _guarded(
        args,
        lambda t, expect, rid: t.undeploy(
            args.model, args.env, version=args.version, reason=args.reason, deployed_by=args.by,
            expect_version=None if args.version is not None else expect, request_id=rid,
        ),
    )  # fmt: skip
    out.emit(
        d, lambda: f"retired deployment {d.replaces_id}: {d.model} version {d.version} no longer in {d.environment}"
    )
    return 0


def cmd_deployments(args: argparse.Namespace, out: Output) -> int:
    tracker = open_ledger(args)
    if args.at is not None:
        if args.model is None:
            raise ValidationError("--at needs a model")
        found = tracker.deployments_at(args.model, parse_time(args.at), environment=args.env, version=args.version)
        rows = [
            (env, d.version if d else None, d.id if d else None, d.deployed_at if d else None)
            for env, d in found.items()
        ]
        headers = ["environment", "version", "deployment", "since"]
        out.emit(found, lambda: table(rows, headers) if rows else "no deployments")
        return 0
    status = "active" if args.current else args.status
    out.rows(
        tracker.deployments(args.model, environment=args.env, version=args.version, status=status),
        _DEPLOYMENT_HEADERS,
        lambda d: (
            d.id, d.model, d.environment, d.version, d.status, d.action, d.deployed_at, d.ended_at, d.deployed_by,
            d.reason,
        ),
        "no deployments",
    )  # fmt: skip
    return 0


def cmd_audit(args: argparse.Namespace, out: Output) -> int:
    since = parse_time(args.since) if args.since else None
    out.rows(
        open_ledger(args).audit(
            action=args.action, entity=args.entity, entity_id=args.entity_id, since=since, limit=args.limit
        ),
        ["id", "at", "action", "entity", "entity id", "user", "host", "after"],
        lambda r: (r.id, r.at, r.action, r.entity, r.entity_id, r.os_user, r.host, r.after),
        "no audit events",
    )
    return 0


def cmd_production(args: argparse.Namespace, out: Output) -> int:
    tracker = open_ledger(args)
    if args.metric and args.env:
        out.rows(
            tracker.compare_production(
                args.model, args.env, args.metric, training_metric=args.training_metric, mode=args.mode
            ),
            ["measured", "version", "deployment", args.metric, "training final", "difference", "training best"],
            lambda r: (
                r.measured_at, r.version, r.deployment_id, r.value, r.training_last, r.delta_last, r.training_best
            ),
            "no production metrics",
        )  # fmt: skip
        return 0
    out.rows(
        tracker.production_metrics(args.model, environment=args.env, metric=args.metric),
        ["measured", "environment", "version", "deployment", "metric", "value"],
        lambda p: (p.measured_at, p.environment, p.version, p.deployment_id, p.metric, p.value),
        "no production metrics",
    )
    return 0


def _retry_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--expect-version",
        type=int,
        metavar="N",
        help="refuse (exit 2, nothing changed) unless version N serves the environment now",
    )
    p.add_argument(
        "--request-id",
        metavar="ID",
        help="idempotency key: running the command again with the same ID never makes a second change",
    )


def register(commands: Commands) -> None:
    add = commands.add
    p = add("deploy", cmd_deploy, "deploy a version to an environment (the previous one there is superseded)")
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("--env", "--environment", dest="env", required=True)
    p.add_argument("--endpoint")
    p.add_argument("--reason")
    p.add_argument("--by", help="who deploys (default: the OS user)")
    _retry_options(p)

    p = add("rollback", cmd_rollback, "return an environment to the version active before the current one")
    p.add_argument("model")
    p.add_argument("--env", "--environment", dest="env", required=True)
    p.add_argument("--reason")
    p.add_argument("--by")
    _retry_options(p)

    p = add("undeploy", cmd_undeploy, "retire what serves an environment")
    p.add_argument("model")
    p.add_argument("--env", "--environment", dest="env", required=True)
    p.add_argument("--version", type=int, help="refuse unless this version is the one serving")
    p.add_argument("--reason")
    p.add_argument("--by")
    _retry_options(p)

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
