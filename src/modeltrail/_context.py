"""What a training ran with: code version, environment, host and user, captured automatically."""

from __future__ import annotations

import getpass
import os
import platform
import socket
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from typing import Any

from ._secrets import redact_argv


@lru_cache(maxsize=1)
def os_identity() -> tuple[str, str]:
    """(OS user, host) of this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return user, socket.gethostname()


#: Packages whose versions decide whether a training can be reproduced.
KEY_PACKAGES = (
    "modeltrail", "numpy", "scipy", "pandas", "scikit-learn", "joblib", "torch", "lightning",
    "pytorch-lightning", "keras", "tensorflow", "jax", "xgboost", "lightgbm", "sqlalchemy",
)  # fmt: skip


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Installed versions of :data:`KEY_PACKAGES` (read from metadata, nothing is imported)."""
    found = {}
    for name in KEY_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_state(cwd: str | None = None) -> dict[str, Any] | None:
    """Commit, branch and dirty flag of the repository around ``cwd``, or None outside one.

    Two ``git`` processes, run side by side: every training start pays for them.
    """

    def start(*args: str) -> subprocess.Popen[str] | None:
        try:
            return subprocess.Popen(
                ["git", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        except OSError:
            return None

    def lines(process: subprocess.Popen[str] | None) -> list[str] | None:
        if process is None:
            return None
        try:
            out, _ = process.communicate(timeout=5)
        except subprocess.SubprocessError:
            process.kill()
            process.communicate()
            return None
        return out.splitlines() if process.returncode == 0 else None

    status = start("status", "--porcelain", "--untracked-files=no")
    found = lines(start("rev-parse", "HEAD", "--show-toplevel", "--abbrev-ref", "HEAD"))
    dirty = lines(status)
    if not found or len(found) != 3:
        return None
    commit, root, branch = found
    return {"commit": commit, "branch": branch, "dirty": bool(dirty), "root": root}


def capture(*, seeds: dict[str, Any] | None = None) -> dict[str, Any]:
    user, host = os_identity()
    return {
        "git": git_state(os.getcwd()),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "host": host,
        "user": user,
        "pid": os.getpid(),
        "command": redact_argv([sys.executable, *sys.argv]),
        "cwd": os.getcwd(),
        "seeds": dict(seeds or {}),
    }
