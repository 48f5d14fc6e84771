"""``modeltrail serve``: the version deployed to an environment, over HTTP (the ``serve`` extra).

``POST /predict``, ``GET /health``, ``GET /version``; every answer names the served version in the
``X-Modeltrail-Version`` header. The process records itself as a serving instance, heartbeats, writes
its own production metrics, and follows deploys and rollbacks without a restart (see ``runner``).
Like the CLI and the dashboard it reaches the ledger only through :class:`~modeltrail.Tracker`.
Loaded on first use, so ``import modeltrail.serve`` works, and says what to install, without the extra.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ModelServer", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "ModelServer":
        from .runner import ModelServer

        return ModelServer
    raise AttributeError(f"module 'modeltrail.serve' has no attribute {name!r}")
