"""Commands that look after the ledger and its surroundings: db (upgrade, current, grants), sync, ui, run."""

from __future__ import annotations

import argparse

from .._config import mask_password, resolve_uri
from .._errors import ConfigurationError
from .._progress import Progress
from .._records import SpoolReplay
from .options import EXIT_ERROR, Commands
from .output import Output, count


def cmd_db_upgrade(args: argparse.Namespace, out: Output) -> int:
    from .._tracker import Tracker

    with Progress(f"upgrading the schema of {mask_password(resolve_uri(args.uri))}"):
        result = Tracker.upgrade_schema(args.uri, args.revision)
    uri, before, after = result["uri"], result["from"], result["to"]
    out.emit(
        result, lambda: f"{uri}: already at {after}" if before == after else f"{uri}: {before or 'empty'} -> {after}"
    )
    return 0


def cmd_db_current(args: argparse.Namespace, out: Output) -> int:
    from .._tracker import Tracker

    s = Tracker.schema_state(args.uri)
    hint = "" if s.current == s.head else ": run `modeltrail db upgrade`"
    out.emit(s, lambda: f"{s.uri}: {s.current or '-'} (head {s.head}, {s.state}){hint}")
    return 0


def cmd_db_grants(args: argparse.Namespace, out: Output) -> int:
    from .._tracker import Tracker

    database, statements, script = Tracker.grant_statements(
        args.uri, database=args.database, writer=args.writer, operator=args.operator, analyst=args.analyst,
        host=args.host,
    )  # fmt: skip
    out.emit({"database": database, "statements": statements}, lambda: script)
    return 0


def cmd_sync(args: argparse.Namespace, out: Output) -> int:
    """Replay what earlier processes left in the local spool for this database."""
    from .._tracker import Tracker

    waiting = Tracker.spooled(args.uri)
    with Progress(
        f"replaying {count(waiting, 'spooled entry', 'spooled entries')} into {mask_password(resolve_uri(args.uri))}"
    ):
        r = Tracker.replay_spool(args.uri, timeout=args.timeout)
    out.emit(r, lambda: _sync_report(r))
    return 0 if r.waiting == 0 and r.set_aside == 0 and not r.quarantined else EXIT_ERROR


def _wait(n: int) -> str:
    return f"{n} {'waits' if n == 1 else 'wait'}"


def _sync_report(r: SpoolReplay) -> str:
    if r.held_by_other_sync and r.replayed == 0:
        return (
            f"{r.uri}: another `modeltrail sync` (or another modeltrail process) holds the spool and is replaying "
            f"{count(r.held_by_other_sync, 'entry', 'entries')} now; nothing replayed here, {_wait(r.waiting)}"
        )
    lines = [f"{r.uri}: replayed {count(r.replayed, 'spooled entry', 'spooled entries')}, {_wait(r.waiting)}"]
    if r.held_by_other_sync:
        lines.append(f"another modeltrail process is replaying {r.held_by_other_sync} of them now")
    if r.held_by_running:
        lines.append(
            f"{r.held_by_running} of them "
            + (
                "belongs to a modeltrail process still running, which replays it"
                if r.held_by_running == 1
                else "belong to modeltrail processes still running, which replay them"
            )
        )
    if r.set_aside:
        refused = count(r.set_aside, "entry", "entries")
        lines.append(
            f"{refused} the database refused {'is' if r.set_aside == 1 else 'are'} set aside in {r.dead_letters}"
        )
    lines += [f"damaged spool set aside (not replayed): {path}" for path in r.quarantined]
    return "\n".join(lines)


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


def register(commands: Commands) -> None:
    db = commands.group("db", "database schema: upgrade, current, grants", "database schema", "ACTION")
    p = db.add("upgrade", cmd_db_upgrade, "create the schema or migrate it to the newest revision")
    p.add_argument("--revision", default="head")
    db.add("current", cmd_db_current, "the schema revision of the database")
    p = db.add("grants", cmd_db_grants, "least-privilege roles: GRANTs and guard triggers (MySQL/MariaDB, PostgreSQL)")
    p.add_argument("--database", help="the database (default: the one in --uri)")
    p.add_argument("--writer", default="modeltrail_writer", help="user for training jobs")
    p.add_argument("--operator", default="modeltrail_operator", help="user who deploys and rolls back")
    p.add_argument("--analyst", default="modeltrail_analyst", help="read-only user")
    p.add_argument("--host", default="%", help="the users' host part (MySQL/MariaDB)")

    p = commands.add("sync", cmd_sync, "replay work spooled locally while the database was unreachable")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the database")

    p = commands.add("ui", cmd_ui, "a read-only web dashboard over the ledger")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (not loopback: needs a token)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default=None, help="required for non-local binding (or $MODELTRAIL_UI_TOKEN)")

    p = commands.add(
        "run",
        cmd_run,
        "run a Python script with autologging into the ledger (preprocessing fits, such as a scaler, are recorded "
        "with the model fitted after them)",
    )
    p.add_argument(
        "--model",
        help="model name for every fit (default: each estimator's or module's class name; a script that fits only "
        "transformers: the script's name)",
    )
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
