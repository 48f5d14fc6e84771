"""Dataset identity: a name plus a content digest, so "trained on the same data" is a query."""

from __future__ import annotations

import hashlib
import operator
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import ValidationError
from ._values import MAX_FEATURES_BYTES, TEXT_MAX_BYTES, check_dataset_name, check_string, json_size

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Dataset:
    """What a training was fed: ``digest`` is a sha256 over content, shape and dtype."""

    name: str
    digest: str
    n_rows: int | None = None
    n_features: int | None = None
    shape: tuple[int, ...] | None = None
    features: tuple[str, ...] | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        """Every field as the ``datasets`` table can hold it: refused here, never by the writer."""
        check_dataset_name(self.name)
        if not isinstance(self.digest, str) or not self.digest:
            raise ValidationError(f"dataset digest must be a non-empty string, got {self.digest!r}", value=self.digest)
        what = f"dataset {self.name!r}"
        check_string(self.digest, f"{what}: digest", max_chars=64)
        for label in ("n_rows", "n_features"):
            _check_count(getattr(self, label), f"{what}: {label}")
        if self.shape is not None:
            if not isinstance(self.shape, (tuple, list)):
                raise ValidationError(f"{what}: shape must be a tuple of sizes, got {self.shape!r}", value=self.shape)
            for n in self.shape:
                _check_count(n, f"{what}: shape")
        if self.features is not None:
            for feature in self.features:
                if isinstance(feature, str):
                    check_string(feature, f"{what}: feature name")
            size = json_size(list(self.features))
            if size > MAX_FEATURES_BYTES:
                raise ValidationError(
                    f"{what}: its {len(self.features):,} feature names are {size:,} bytes as JSON, "
                    f"the limit is {MAX_FEATURES_BYTES:,}",
                    value=self.name,
                )
        if self.source is not None:
            check_string(self.source, f"{what}: source", max_bytes=TEXT_MAX_BYTES)

    @classmethod
    def from_arrays(cls, X: Any, y: Any = None, *, name: str, source: str | None = None) -> Dataset:
        """Fingerprint in-memory data: numpy arrays, pandas frames, torch tensors, scipy sparse, lists."""
        h = hashlib.sha256()
        shape, features = _feed(h, X, f"dataset {name!r}: X")
        if y is not None:
            h.update(b"|y|")
            _feed(h, y, f"dataset {name!r}: y")
        n_rows = shape[0] if shape else None
        n_features = shape[1] if len(shape) > 1 else (1 if shape else None)
        return cls(
            name=name, digest=h.hexdigest(), n_rows=n_rows, n_features=n_features,
            shape=shape or None, features=features, source=source,
        )  # fmt: skip

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, name: str | None = None) -> Dataset:
        """Fingerprint a file (or every file under a directory) by its bytes."""
        p = Path(path)
        if not p.exists():
            raise ValidationError(f"dataset path does not exist: {os.fspath(path)!r}", value=os.fspath(path))
        digest, _size = path_digest(p)
        return cls(name=name or p.name, digest=digest, source=str(p.resolve()))


def path_digest(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(sha256, size in bytes) of a file, or of every file under a directory with their names."""
    p = Path(path)
    if not p.is_dir():
        return _file_sha256(p)
    h, total = hashlib.sha256(), 0
    for f in sorted(f for f in p.rglob("*") if f.is_file()):
        digest, size = _file_sha256(f)
        # A name's own bytes: one that is not UTF-8 (os.fsdecode's surrogates) hashes like any other.
        h.update(os.fsencode(f.relative_to(p).as_posix()) + f"\0{digest}\n".encode())
        total += size
    return h.hexdigest(), total


def _file_sha256(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _check_count(n: Any, what: str) -> None:
    """A size the schema keeps in a BIGINT: a non-negative integer below 2**63."""
    if n is None:
        return
    try:
        value = -1 if isinstance(n, bool) else operator.index(n)  # numpy integers too
    except TypeError:
        value = -1
    if not 0 <= value < 2**63:
        raise ValidationError(f"{what} must be a non-negative integer below 2**63, got {n!r}", value=n)


def _feed(h: Any, data: Any, what: str) -> tuple[tuple[int, ...], tuple[str, ...] | None]:
    """Hash ``data`` into ``h``; return its shape and feature names. ``what`` names it in errors."""
    import numpy as np

    features = None
    columns = getattr(data, "columns", None)
    if columns is not None and hasattr(data, "to_numpy"):  # pandas / polars frame
        features = tuple(str(c) for c in columns)
        h.update(repr(features).encode())
        data = data.to_numpy()
    elif hasattr(data, "to_numpy"):  # pandas Series
        data = data.to_numpy()
    if hasattr(data, "detach") and hasattr(data, "cpu"):  # torch tensor
        data = data.detach().cpu().numpy()
    if hasattr(data, "tocsr") and hasattr(data, "nnz"):  # scipy sparse
        csr = data.tocsr()
        for part in (csr.data, csr.indices, csr.indptr):
            h.update(np.ascontiguousarray(part).tobytes())
        h.update(repr(csr.shape).encode())
        return tuple(int(n) for n in csr.shape), features
    try:
        arr = np.asarray(data)
    except ValueError as e:  # a ragged list: rows of different lengths
        raise ValidationError(
            f"{what} is not a rectangular array (rows of different lengths?): {e}", value=data
        ) from None
    h.update(f"{arr.shape}{arr.dtype.str}".encode())
    if arr.dtype.kind == "O":
        h.update(repr(arr.tolist()).encode())
    else:
        h.update(np.ascontiguousarray(arr).tobytes())
    return tuple(int(n) for n in arr.shape), features


def dataset_row(dataset: Dataset) -> dict[str, Any]:
    """The dataset as the operations store it (and the spool keeps it): plain JSON types only."""
    return {
        "name": dataset.name,
        "digest": dataset.digest,
        "n_rows": None if dataset.n_rows is None else operator.index(dataset.n_rows),
        "n_features": None if dataset.n_features is None else operator.index(dataset.n_features),
        "shape": [operator.index(n) for n in dataset.shape] if dataset.shape else None,
        "features": list(dataset.features) if dataset.features else None,
        "source": dataset.source,
    }
