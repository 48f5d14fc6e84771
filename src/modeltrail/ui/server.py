"""``modeltrail ui``: the dashboard served by uvicorn on this machine.

Listening on loopback (the default) needs nothing. Listening anywhere else exposes the ledger
to the network, so it needs a token (``token=`` or ``MODELTRAIL_UI_TOKEN``) and without one the
server refuses to start. The token never reaches the access log: ``token=`` values are masked.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re

import uvicorn

from .._errors import ConfigurationError
from .app import create_app

ENV_TOKEN = "MODELTRAIL_UI_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Host header names a loopback-only dashboard answers to (anything else may be DNS rebinding).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s]*")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; an unspecified address (0.0.0.0, ::) is not."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def resolve_token(token: str | None) -> str | None:
    """The token: the argument, then ``MODELTRAIL_UI_TOKEN``; empty means none."""
    if token is None:
        token = os.environ.get(ENV_TOKEN)
    return token if token and token.strip() else None


class RedactToken(logging.Filter):
    """Masks ``token=`` query values in uvicorn's access log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def make_server(
    uri: str | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    log_level: str = "info",
) -> uvicorn.Server:
    """A uvicorn server for the dashboard, not yet running; refuses a non-loopback host without a token."""
    token = resolve_token(token)
    loopback = is_loopback(host)
    if not loopback and token is None:
        raise ConfigurationError(
            f"refusing to serve the dashboard on {host!r} without a token: anyone who can reach it could read "
            f"the ledger. Pass --token or set {ENV_TOKEN}, or bind to 127.0.0.1",
            value=host,
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(f"port must be an integer from 0 to 65535, got {port!r}", value=port)
    app = create_app(uri, token=token, allowed_hosts=LOOPBACK_NAMES if loopback and token is None else None)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, server_header=False)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactToken) for f in access.filters):
        access.addFilter(RedactToken())
    return uvicorn.Server(config)


def serve(
    uri: str | None = None, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None
) -> None:
    """Serve the read-only dashboard over the ledger at ``uri`` until interrupted."""
    server = make_server(uri, host=host, port=port, token=token)
    shown = f"[{host}]" if ":" in host else host
    protected = "; open it once with ?token=<token>" if resolve_token(token) else ""
    print(f"modeltrail dashboard (read-only) on http://{shown}:{port}/{protected}", flush=True)
    server.run()
