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
    """Commit, branch and dirty flag of the repository around ``cwd``, or None outside one."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status),
        "root": git("rev-parse", "--show-toplevel"),
    }


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
