"""One exception hierarchy, so callers can catch ``ModeltrailError`` and nothing else.

Every error that is about a value the caller passed carries that value in
``.value`` and names it in the message::

    ModeltrailError
    ├── ValidationError            (also a ValueError)   a value given to the API is refused
    │   └── ConflictError                                 the ledger is not in the state the caller expected
    ├── ConfigurationError         (also a ValueError)   a URL or setting cannot be used
    ├── NotFoundError              (also a LookupError)  no such model, version, training, deployment
    │   └── ArtifactNotStoredError                        its bytes have not reached the artifact store yet
    ├── ArtifactIntegrityError                            stored bytes differ from the sha256 the ledger holds
    └── StorageError                                      the database refused or failed
        ├── StorageUnavailableError                       the server cannot be reached
        ├── PermissionDeniedError                         the database user lacks a privilege
        └── SchemaError                                   not the schema this version expects
            └── SchemaOutdatedError                       an older revision: ``modeltrail db upgrade``

    ModeltrailWarning (a RuntimeWarning)   logging failed and was skipped; training went on
"""

from __future__ import annotations

from typing import Any


class ModeltrailError(Exception):
    """Base class of every error modeltrail raises on purpose."""

    def __init__(self, message: str, *, value: Any = None) -> None:
        super().__init__(message)
        self.value = value


class ValidationError(ModeltrailError, ValueError):
    """A value given to the API is not acceptable (bad name, key, step, metric value...)."""


class ConflictError(ValidationError):
    """The ledger is not in the state the caller said it expected, so nothing was changed.

    Raised when ``expect_version=`` names a version other than the one serving the environment
    (someone else deployed, rolled back or retired in between), or when a ``request_id`` already
    answered one change is sent with another. Read the state again and decide; retrying the same
    call blindly will not help.
    """


class ConfigurationError(ModeltrailError, ValueError):
    """The database URL or another setting cannot be used."""


class NotFoundError(ModeltrailError, LookupError):
    """A model, version, training or deployment asked for does not exist."""


class ArtifactNotStoredError(NotFoundError):
    """An artifact's bytes are not where they can be read: still staged on the machine that logged them
    (the artifact store was down), or recorded without a store on another machine."""


class ArtifactIntegrityError(ModeltrailError):
    """A stored or cached file does not have the sha256 the ledger recorded; it is never deserialized."""


class StorageError(ModeltrailError):
    """The database refused or failed an operation."""


class StorageUnavailableError(StorageError):
    """The database server cannot be reached."""


class PermissionDeniedError(StorageError):
    """The database user lacks a privilege the operation needs."""


class SchemaError(StorageError):
    """The database schema is not the one this modeltrail version expects."""


class SchemaOutdatedError(SchemaError):
    """The database is at an older schema revision: run ``modeltrail db upgrade``."""


class ModeltrailWarning(RuntimeWarning):
    """Logging failed and was skipped so that the user's training could go on (issued once per cause)."""


#: The extra that installs each optional module modeltrail imports only when it is needed.
EXTRAS = {
    "pymysql": "mysql",
    "psycopg": "postgres",
    "matplotlib": "plot",
    "pandas": "pandas",
    "fastapi": "ui",
    "jinja2": "ui",
    "uvicorn": "ui",
    "jsonschema": "schema",
    "sklearn": "sklearn",
    "joblib": "sklearn",
    "lightning": "lightning",
    "keras": "keras",
    "skops": "skops",
    "s3fs": "s3",
    "gcsfs": "gcs",
    "adlfs": "azure",
}


def install_hint(error: BaseException | None) -> str | None:
    """``pip install "modeltrail[mysql]"`` when ``error`` (or an error behind it) is a missing optional module."""
    while error is not None:
        if isinstance(error, ImportError) and error.name:
            extra = EXTRAS.get(error.name.partition(".")[0])
            if extra is not None:
                return f'pip install "modeltrail[{extra}]"'
        error = error.__cause__ or error.__context__
    return None
