"""``modeltrail serve`` (the deployed version over HTTP) and ``modeltrail instances`` (who serves, and how)."""

from __future__ import annotations

import argparse
import logging
import sys

from .._errors import ConfigurationError
from .._values import env_seconds
from .options import Commands, open_ledger
from .output import Output

ENV_HEARTBEAT = "MODELTRAIL_SERVE_HEARTBEAT"
ENV_METRICS_INTERVAL = "MODELTRAIL_SERVE_METRICS_INTERVAL"


def _seconds(given: float | None, env: str, default: float) -> float:
    return given if given is not None else env_seconds(env, default)


def cmd_serve(args: argparse.Namespace, out: Output) -> int:
    try:
        from ..serve import runner
    except ImportError as e:
        hint = 'pip install "modeltrail[serve]"'
        raise ConfigurationError(f"`modeltrail serve` needs the serve extra: {hint} ({e})") from e
    heartbeat_s = _seconds(args.heartbeat, ENV_HEARTBEAT, runner.DEFAULT_HEARTBEAT_S)
    metrics_interval_s = _seconds(args.metrics_interval, ENV_METRICS_INTERVAL, runner.DEFAULT_METRICS_INTERVAL_S)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("modeltrail serve: %(message)s"))
    logger = logging.getLogger("modeltrail.serve")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    server = runner.ModelServer(
        open_ledger(args),
        args.model,
        args.env,
        host=args.host,
        port=args.port,
        heartbeat_s=heartbeat_s,
        metrics_interval_s=metrics_interval_s,
        access_log=args.access_log,
    )
    served = server.prepare()
    out.emit(
        {"model": served.name, "environment": served.environment, "version": served.version,
         "deployment_id": served.deployment_id, "instance_id": server.instance_id, "url": server.url},
        lambda: f"serving {served.name} version {served.version} ({served.environment}, deployment "
        f"{served.deployment_id}) on {server.url} as instance {server.instance_id}; Ctrl+C stops",
    )  # fmt: skip
    sys.stdout.flush()
    server.run()
    return 0


def cmd_instances(args: argparse.Namespace, out: Output) -> int:
    out.rows(
        open_ledger(args).serving_instances(args.model, environment=args.env, state=args.state, limit=args.limit),
        ["id", "model", "environment", "version", "state", "url", "pid", "started", "heartbeat", "ended", "reason"],
        lambda i: (
            i.id, i.model, i.environment, i.version, i.state, i.url, i.pid, i.started_at, i.heartbeat_at, i.ended_at,
            i.end_reason,
        ),
        "no serving instances",
    )  # fmt: skip
    return 0


def register(commands: Commands) -> None:
    p = commands.add("serve", cmd_serve, "serve the version deployed to an environment over HTTP (/predict)")
    p.add_argument("model")
    p.add_argument("--env", "--environment", dest="env", required=True)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument(
        "--heartbeat",
        type=float,
        metavar="SECONDS",
        help=f"how often the instance reports alive and checks for a new deployment (default 5, ${ENV_HEARTBEAT})",
    )
    p.add_argument(
        "--metrics-interval",
        type=float,
        metavar="SECONDS",
        help=f"how often production metrics are written (default 60, ${ENV_METRICS_INTERVAL})",
    )
    p.add_argument("--access-log", action="store_true", help="log every request (off by default: it costs)")

    p = commands.add("instances", cmd_instances, "serving instances (modeltrail serve processes) and their state")
    p.add_argument("model", nargs="?")
    p.add_argument("--env", "--environment", dest="env")
    p.add_argument("--state", choices=["serving", "lost", "stopped", "failed"])
    p.add_argument("--limit", type=int, default=50)
