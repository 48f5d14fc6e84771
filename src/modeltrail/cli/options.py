"""What every command shares: the parser that reports in one line, opening the ledger, argument types.

Each command family registers its sub-commands through :class:`Commands`; a handler takes the
parsed arguments and an :class:`~modeltrail.cli.output.Output` and returns the exit status.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from .._errors import ValidationError
from .._progress import Progress
from .output import Output

if TYPE_CHECKING:
    from .._tracker import Tracker

EXIT_ERROR = 2
Handler = Callable[[argparse.Namespace, Output], int]


class UsageError(Exception):
    """A command line argparse refused; reported in one line like every other error."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class Commands:
    """Adds sub-commands that all take the common options (``--uri``, ``--json``) before or after."""

    def __init__(self, sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
        self.sub = sub
        self.common = common

    def add(self, name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = self.sub.add_parser(name, parents=[self.common], help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    def group(self, name: str, help_: str, description: str, metavar: str) -> Commands:
        """A command with actions of its own (``db upgrade``)."""
        parser = self.sub.add_parser(name, help=help_, description=description)
        actions = parser.add_subparsers(dest=f"{name}_command", metavar=metavar, parser_class=Parser)
        actions.required = True
        return Commands(actions, self.common)


def mode_by(p: argparse.ArgumentParser, *, by: bool = True, mode_default: str | None = "max") -> None:
    """``--mode`` (which direction is better) and, for rankings, ``--by`` (best or last value)."""
    p.add_argument("--mode", choices=["max", "min"], default=mode_default, help="which direction is better")
    if by:
        p.add_argument(
            "--by",
            choices=["best", "last"],
            default="best",
            help="rank by each training's best value over its history, or its last value",
        )


def open_ledger(args: argparse.Namespace, *, create: bool = False) -> Tracker:
    """The ledger named by ``--uri`` / ``MODELTRAIL_URI``; created only for imports (otherwise ``db upgrade`` does).

    A command with ``--artifacts`` reads the artifact store it names instead of the ledger's.
    """
    from .._tracker import Tracker  # here, not at import: `modeltrail --help` needs no SQLAlchemy

    hint = "log a training first, or create it with `modeltrail db upgrade`"
    return Tracker.open_ledger(args.uri, create=create, hint=hint, artifacts=getattr(args, "artifacts", None))


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


def metric_pairs(pairs: Sequence[str]) -> dict[str, float]:
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


def follow(bar: Progress) -> Callable[[int, int], None]:
    """A ``(done, total)`` callback that moves ``bar``: what the Tracker's long operations report to."""

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.set_total(total)
        bar.advance(done - bar.done)

    return progress
