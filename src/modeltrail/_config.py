"""Where the ledger lives: the database URL and how it is shown to people.

The URL comes from an explicit argument, then ``MODELTRAIL_URI``, then an SQLite
file in the working directory, so a first run needs no server.
"""

from __future__ import annotations

import os
import re

from ._errors import ConfigurationError

ENV_URI = "MODELTRAIL_URI"
DEFAULT_URI = "sqlite:///modeltrail.db"

# user:password@ inside any URL-looking string; used to scrub driver messages too.
_PASSWORD_IN_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*):(?P<pw>[^@\s]*)@")


def resolve_uri(uri: str | None = None) -> str:
    """Return the URL to use: the argument, then ``MODELTRAIL_URI``, then the SQLite default."""
    if uri is not None:
        if not isinstance(uri, str) or not uri.strip():
            raise ConfigurationError(f"database URL must be a non-empty string, got {uri!r}", value=uri)
        return uri.strip()
    env = os.environ.get(ENV_URI, "").strip()
    return env or DEFAULT_URI


def mask_password(text: str) -> str:
    """Replace the password of every URL in ``text`` with ``***``."""
    return _PASSWORD_IN_URL.sub(lambda m: f"{m.group('scheme')}:***@", text)


def database_of(uri: str) -> tuple[str, str]:
    """The backend name (``sqlite``, ``mysql``, ``postgresql``) and the database a URL names.

    The one place a URL is taken apart; SQLAlchemy is imported here, not when modeltrail is.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(uri)
    except ArgumentError as e:
        raise ConfigurationError(f"not a database URL: {mask_password(uri)!r}", value=mask_password(uri)) from e
    return url.get_backend_name(), url.database or ""


def require_existing(uri: str, *, hint: str) -> None:
    """Refuse an SQLite URL whose file does not exist: opening it would create an empty database.

    ``hint`` says what to do instead; servers, in-memory and ``file:`` URIs always pass.
    """
    backend, database = database_of(uri)
    if backend != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return
    if not os.path.exists(os.path.expanduser(database)):
        raise ConfigurationError(f"no modeltrail database at {database!r}: {hint}", value=database)
