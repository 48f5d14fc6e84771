"""The read-only web dashboard (``modeltrail ui``): needs the ``ui`` extra (FastAPI, Jinja2, uvicorn).

``create_app`` builds the ASGI application; ``serve`` runs it with uvicorn. Both are loaded on first
use so that ``import modeltrail.ui`` works, and says what to install, without the extra.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(f"module 'modeltrail.ui' has no attribute {name!r}")
