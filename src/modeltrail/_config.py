"""Where the ledger lives: the database URL and how it is shown to people.

The URL comes from an explicit argument, then ``MODELTRAIL_URI``, then an SQLite
file in the working directory, so a first run needs no server.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._errors import ConfigurationError
from ._secrets import mask_url_passwords

ENV_URI = "MODELTRAIL_URI"
DEFAULT_URI = "sqlite:///modeltrail.db"


def resolve_uri(uri: str | None = None) -> str:
    """Return the URL to use: the argument, then ``MODELTRAIL_URI``, then the SQLite default."""
    if uri is not None:
        if not isinstance(uri, str) or not uri.strip():
            raise ConfigurationError(f"database URL must be a non-empty string, got {uri!r}", value=uri)
        return encode_at_in_password(uri.strip())
    env = os.environ.get(ENV_URI, "").strip()
    return encode_at_in_password(env) if env else DEFAULT_URI


def encode_at_in_password(uri: str) -> str:
    """``scheme://app:p@ss@db/x`` as ``scheme://app:p%40ss@db/x``: the last ``@`` ends the password.

    Unencoded, SQLAlchemy takes ``ss@db`` for the host, fails to resolve it and shows the rest of
    the password in the error; encoded, the password is the one the user typed and is hidden.
    """
    scheme, sep, rest = uri.partition("://")
    head, query_sep, query = rest.partition("?")
    if not sep or head.count("@") < 2:
        return uri
    userinfo, _, hostpart = head.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not colon:
        return uri
    return f"{scheme}://{user}:{password.replace('@', '%40')}@{hostpart}{query_sep}{query}"


def mask_password(text: str) -> str:
    """Replace the password of every URL in ``text`` with ``***``, an unencoded ``@`` in it included."""
    return mask_url_passwords(text)


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


def local_dir(directory: str | os.PathLike[str] | None, env: str, name: str) -> Path:
    """A folder of modeltrail's on this machine: the argument, else ``$env``, else ``name`` in the user's cache."""
    if directory is not None:
        return Path(directory)
    value = os.environ.get(env)
    if value:
        return Path(value)
    from platformdirs import user_cache_path  # here: only a process that spools or fetches needs it

    return user_cache_path("modeltrail", appauthor=False) / name
