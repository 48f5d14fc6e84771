"""What the benchmarks share: the MariaDB server, fresh databases, child processes, progress lines, tables.

The scripts run as files (``python benchmarks/bench_logging.py``), so this folder is on
``sys.path`` and they import this module as ``_common``. It imports nothing heavy: a child
process that imports it still starts its clocks with a bare interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MYSQL_HOST = os.environ.get("BENCH_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("BENCH_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("BENCH_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("BENCH_MYSQL_PASSWORD", "")

BACKENDS = ("sqlite", "mysql")
MLFLOW_BATCH = 1_000  # MLflow's own limit on metrics per log_batch

#: Every child process: no telemetry, stable hashing, no warning chatter in the output we parse.
CHILD_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "PYTHONHASHSEED": "0",
    "PYTHONWARNINGS": "ignore",
}
#: A child's figures come back as one stdout line with this prefix, whatever else it prints.
RESULT_TAG = "BENCH-RESULT "


# --------------------------------------------------------------- databases
def mysql_admin(sql: str) -> tuple[Any, ...]:
    """Run one statement on the server outside any database; its rows, if it returns any."""
    import pymysql

    db = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD, autocommit=True)
    try:
        with db.cursor() as cur:
            cur.execute(sql)
            return tuple(cur.fetchall())
    finally:
        db.close()


def mysql_url(database: str) -> str:
    auth = MYSQL_USER + (f":{MYSQL_PASSWORD}" if MYSQL_PASSWORD else "")
    return f"mysql+pymysql://{auth}@{MYSQL_HOST}:{MYSQL_PORT}/{database}?charset=utf8mb4"


def fresh_mysql_database(database: str) -> str:
    """Drop and create ``database`` (so no earlier run's rows count); its SQLAlchemy URL."""
    mysql_admin(f"DROP DATABASE IF EXISTS `{database}`")
    mysql_admin(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    return mysql_url(database)


def drop_mysql_database(database: str) -> None:
    with contextlib.suppress(Exception):  # clean-up after a run: a server gone away is not worth a traceback
        mysql_admin(f"DROP DATABASE IF EXISTS `{database}`")


@dataclass
class Databases:
    """Fresh databases on demand: SQLite files in ``workdir``, MariaDB databases suffixed with ``tag``."""

    workdir: str
    tag: str
    made: list[str] = field(default_factory=list)

    def url(self, backend: str, name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{os.path.join(self.workdir, name + '.db')}"
        database = f"{name}_{self.tag}"
        url = fresh_mysql_database(database)
        self.made.append(database)
        return url

    def drop(self) -> None:
        for database in self.made:
            drop_mysql_database(database)
        self.made.clear()


# ---------------------------------------------------------- child processes
def emit_result(result: Mapping[str, Any]) -> None:
    """A child's last word: its figures, for :func:`run_child`."""
    sys.stdout.write(RESULT_TAG + json.dumps(result) + "\n")
    sys.stdout.flush()


def run_child(
    argv: Sequence[str], *, what: str, env: Mapping[str, str] | None = None, timeout: float | None = None
) -> dict[str, Any]:
    """Run ``python *argv`` in a fresh interpreter and return the figures it emitted.

    A fresh process per measurement: clean memory figures, no threads or caches left over.
    """
    full_env = {**os.environ, **CHILD_ENV, **(env or {})}
    proc = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return dict(json.loads(line[len(RESULT_TAG) :]))
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{tail}")


# ----------------------------------------------------------- command line
def step(message: str, *, file: Any = None) -> None:
    """A progress line, timestamped (stderr unless ``file``: the results go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=file or sys.stderr, flush=True)


def comma_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_backends(parser: argparse.ArgumentParser, value: str) -> list[str]:
    """``--backends sqlite,mysql`` as a list; an unknown name is a usage error."""
    backends = comma_list(value)
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    return backends


def fill_defaults(args: argparse.Namespace, sizes: Sequence[tuple[str, Any, Any]]) -> None:
    """Options left unset take their full size, or their small one under ``--quick``."""
    for name, full, small in sizes:
        if getattr(args, name) is None:
            setattr(args, name, small if args.quick else full)


# ------------------------------------------------------------------ tables
def print_columns(
    head: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str], *, gap_between_groups: bool = False
) -> None:
    """An aligned text table; ``gap_between_groups``: a blank line wherever the first column changes."""
    cells = [tuple(head), *(tuple(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]

    def fmt(c: tuple[str, ...]) -> str:
        return "  ".join(f"{v:{a}{w}}" for v, a, w in zip(c, align, widths, strict=True)).rstrip()

    print(fmt(cells[0]))
    print("  ".join("-" * w for w in widths))
    last = None
    for c in cells[1:]:
        if gap_between_groups and last is not None and c[0] != last:
            print()
        last = c[0]
        print(fmt(c))
