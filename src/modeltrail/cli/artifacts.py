"""Commands about what a version holds: its artifacts, pulling its model, aliases, tags and notes."""

from __future__ import annotations

import argparse
from typing import Any

from .._errors import ValidationError
from .options import Commands, open_ledger, parse_time
from .output import Output, count, fmt, table

_ARTIFACT_HEADERS = ["name", "kind", "size", "sha256", "flavor", "role", "state", "location"]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _artifact_cells(a: Any) -> tuple[Any, ...]:
    where = a.location or a.source_path
    kind = a.kind if a.kind == "file" else f"{a.kind} ({count(a.files, 'file')})"
    return (a.name, kind, _size(a.size), a.sha256[:12],
            a.flavor, a.role, a.state, where)  # fmt: skip


def cmd_artifacts(args: argparse.Namespace, out: Output) -> int:
    tracker = open_ledger(args)
    rows = tracker.artifacts(args.model, version=args.version)
    number = rows[0].version if rows else args.version
    empty = f"version {number if number is not None else '(latest)'} of {args.model} has no artifacts"
    out.rows(rows, _ARTIFACT_HEADERS, _artifact_cells, empty)
    return 0


def cmd_pull(args: argparse.Namespace, out: Output) -> int:
    if args.version is None and args.env is None and args.alias is None:
        raise ValidationError("say which version: --version N, --env ENVIRONMENT or --alias ALIAS", value=None)
    at = parse_time(args.at) if args.at else None
    tracker = open_ledger(args)
    found = tracker.download_model(
        args.model, version=args.version, environment=args.env, at=at, alias=args.alias, artifact=args.artifact,
        dest=args.output,
    )  # fmt: skip
    a = found.artifact
    out.emit(
        {"model": found.model, "version": found.version, "path": found.path, "artifact": a},
        lambda: (
            f"pulled {found.model} version {found.version}, artifact {a.name!r} ({_size(a.size)}, "
            f"sha256 {a.sha256[:12]} verified) to {found.path}"
        ),
    )
    return 0


def cmd_alias_set(args: argparse.Namespace, out: Output) -> int:
    record = open_ledger(args).set_alias(args.model, args.alias, version=args.version, set_by=args.by)
    out.emit(record, lambda: f"alias {record.alias} of {record.model} -> version {record.version}")
    return 0


def cmd_alias_delete(args: argparse.Namespace, out: Output) -> int:
    number = open_ledger(args).delete_alias(args.model, args.alias)
    out.emit(
        {"model": args.model, "alias": args.alias, "version": number},
        lambda: f"alias {args.alias} of {args.model} removed (it named version {number})",
    )
    return 0


def cmd_alias_list(args: argparse.Namespace, out: Output) -> int:
    rows = open_ledger(args).aliases(args.model)
    out.rows(rows, ["alias", "version", "set", "by"], lambda a: (a.alias, a.version, a.set_at, a.set_by), "no aliases")
    return 0


def _tag_pairs(pairs: list[str], removed: list[str]) -> dict[str, str | None]:
    tags: dict[str, str | None] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"a tag is KEY=VALUE, got {pair!r}", value=pair)
        tags[key] = value
    tags.update(dict.fromkeys(removed))
    if not tags:
        raise ValidationError("give at least one KEY=VALUE or --remove KEY", value=None)
    return tags


def cmd_tag_version(args: argparse.Namespace, out: Output) -> int:
    notes = open_ledger(args).tag_version(args.model, args.version, _tag_pairs(args.tags, args.remove))
    out.emit(notes, lambda: _notes_text(notes))
    return 0


def cmd_describe_version(args: argparse.Namespace, out: Output) -> int:
    notes = open_ledger(args).describe_version(args.model, args.version, args.text, updated_by=args.by)
    out.emit(notes, lambda: _notes_text(notes))
    return 0


def _notes_text(notes: Any) -> str:
    return "\n".join(
        [
            f"{notes.model} version {notes.version}",
            f"  description  {fmt(notes.description)}",
            f"  tags         {fmt([f'{k}={v}' for k, v in sorted(notes.tags.items())])}",
            f"  aliases      {fmt(notes.aliases)}",
        ]
    )


def artifacts_table(rows: Any) -> str:
    """The artifacts table ``modeltrail show`` prints per version."""
    return table([_artifact_cells(a) for a in rows], _ARTIFACT_HEADERS)


def register(commands: Commands) -> None:
    add = commands.add
    p = add("artifacts", cmd_artifacts, "a version's artifacts: name, size, sha256, flavor, where they are stored")
    p.add_argument("model")
    p.add_argument("--version", type=int, help="version number (default: the latest)")

    p = add("pull", cmd_pull, "fetch a version's model (verified by sha256) into a folder")
    p.add_argument("model")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--env", "--environment", dest="env", help="what serves this environment now (or --at)")
    which.add_argument("--alias")
    p.add_argument("--at", help="with --env: what served there at this time (YYYY-MM-DD or ISO 8601)")
    p.add_argument("--artifact", default="model", help="which artifact (default: model)")
    p.add_argument("-o", "--output", required=True, help="folder to copy it into")
    p.add_argument("--artifacts", help="artifact store URL (default: $MODELTRAIL_ARTIFACTS or the ledger's)")

    alias = commands.group(
        "alias", "set, remove or list version aliases", "Names for versions (champion...).", "ACTION"
    )
    p = alias.add("set", cmd_alias_set, "point an alias at a version (moves it if it named another)")
    p.add_argument("model")
    p.add_argument("alias")
    p.add_argument("version", type=int)
    p.add_argument("--by", help="who sets it")
    p = alias.add("delete", cmd_alias_delete, "remove an alias")
    p.add_argument("model")
    p.add_argument("alias")
    p = alias.add("list", cmd_alias_list, "a model's aliases")
    p.add_argument("model")

    p = add("tag-version", cmd_tag_version, "set (KEY=VALUE) or remove (--remove KEY) tags on a version")
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("tags", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--remove", action="append", default=[], metavar="KEY")

    p = add("describe-version", cmd_describe_version, "write a version's description")
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("text")
    p.add_argument("--by", help="who writes it")
