"""The ``modeltrail`` command: the ledger's answers for people (tables) and scripts (``--json``).

Thin on purpose: every answer comes from :class:`~modeltrail.Tracker`, so the command line
and Python always agree. Errors are one line on stderr (``modeltrail: error: ...``) with
exit status 2; a database password never reaches the output.

One module per command family (``models``, ``deployments``, ``lineage``, ``exchange``,
``admin``) registers its sub-commands; ``output`` prints, ``options`` holds what they share.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from .._config import mask_password
from .._errors import ModeltrailError, install_hint
from . import admin, deployments, exchange, lineage, models, trainings
from .options import EXIT_ERROR, Commands, Parser, UsageError
from .output import Output

__all__ = ["EXIT_ERROR", "build_parser", "main"]

URI_HELP = "database URL (default: $MODELTRAIL_URI or ./modeltrail.db)"


def build_parser() -> argparse.ArgumentParser:
    # --uri and --json work before or after the command: the sub-parsers' copies must not
    # overwrite a value given before the command with their default, hence SUPPRESS.
    common = Parser(add_help=False)
    common.add_argument("--uri", default=argparse.SUPPRESS, help=URI_HELP)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts")

    parser = Parser(
        prog="modeltrail",
        description="Ask the modeltrail ledger about models, versions, metrics and deployments.",
    )
    parser.add_argument("--uri", default=None, help=URI_HELP)
    parser.add_argument("--json", action="store_true", default=False, help="print JSON for scripts")
    parser.add_argument("--version", action="version", version=f"modeltrail {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    commands = Commands(sub, common)
    for family in (models, trainings, deployments, lineage, exchange, admin):
        family.register(commands)
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
        return _error(e)
    except ImportError as e:  # an optional extra is missing (matplotlib for `plot`, say): one line naming it
        if install_hint(e) is None:
            raise
        return _error(e)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


def _error(e: Exception) -> int:
    """One line on stderr, the password masked, with the ``pip install`` hint when an extra is missing."""
    message = " ".join(mask_password(str(e)).split())
    hint = install_hint(e)
    if hint is not None and hint not in message:
        message = f"{message}: {hint}"
    print(f"modeltrail: error: {message}", file=sys.stderr)
    return EXIT_ERROR
