"""The artifact store: where a training's files go, content-addressed by sha256, through fsspec.

Why it looks like this:

* Any fsspec URL is a store: a local or shared folder, ``s3://``, ``gs://``, ``az://``, ``memory://``.
  fsspec is imported only when a file moves, and a URL whose backend is not installed is refused
  with the package to install.
* A file is stored once under ``sha256/<2 hex>/<digest>``: the same model logged twice costs one
  upload, and a retrain can never overwrite an older version's bytes. A directory (a checkpoint
  folder, a saved tokenizer) is its files, each stored that way, plus a *manifest* (a JSON list of
  relative names with their digests and sizes) stored under ``manifests/<digest>.json``. The
  directory's digest is the sha256 of its sorted listing (each name's bytes, NUL, the file's digest,
  newline), the digest ``Dataset.from_file`` gives a folder, so it can be recomputed from the
  manifest and every file checked against it.
* Credentials never leave the caller's memory: the URL kept in the ledger and shown anywhere has
  its ``user:password@`` removed (:func:`public_url`). Keys for a bucket come from the backend's
  usual places (environment variables, profiles) or ``artifact_options``.
* Files are hashed and copied on the writer thread (see ``_writer``). When the store cannot be
  reached, the bytes are copied into a staging folder beside the database's spool and uploaded by
  whichever modeltrail process of that database retries first; the ledger says ``pending`` until
  then (:class:`Staging`).
* Reading back verifies every file's digest against the ledger before anything is handed to a
  deserializer (:func:`fetch`); the local cache is keyed by digest and checked on every use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mimetypes
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ._config import local_dir
from ._dataset import path_digest
from ._errors import (
    ArtifactIntegrityError,
    ArtifactNotStoredError,
    ConfigurationError,
    ModeltrailError,
    StorageUnavailableError,
    ValidationError,
)
from ._secrets import REDACTED

ENV_ARTIFACTS = "MODELTRAIL_ARTIFACTS"
ENV_CACHE = "MODELTRAIL_CACHE_DIR"

#: fsspec protocol -> the modeltrail extra that installs its backend.
EXTRAS = {
    "s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure",
    "adl": "azure",
}  # fmt: skip
#: Protocols whose backend takes a URL's ``user:password`` as these two options.
_URL_CREDENTIALS = {"s3": ("key", "secret"), "s3a": ("key", "secret"), "az": ("account_name", "account_key"),
                    "abfs": ("account_name", "account_key")}  # fmt: skip
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@?#]*@)")


def public_url(url: str) -> str:
    """``url`` without ``user:password@``: what the ledger keeps and what anything prints."""
    return _USERINFO.sub(lambda m: m.group("scheme"), url)


def masked_url(url: str) -> str:
    """``url`` with the userinfo shown as ``***@`` (so a reader sees that credentials were given)."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", url)


def blob_key(sha256: str) -> str:
    return f"sha256/{sha256[:2]}/{sha256}"


def manifest_key(sha256: str) -> str:
    return f"manifests/{sha256}.json"


# --------------------------------------------------------------------- hashing
@dataclass(frozen=True)
class Digest:
    """What hashing a path found: its digest and size, and for a directory each file's."""

    sha256: str
    size: int
    kind: str  # "file" or "directory"
    files: tuple[tuple[str, str, int], ...] = ()  # directory: (relative posix name, sha256, size), sorted

    def manifest(self) -> bytes:
        entries = [{"path": p, "sha256": d, "size": n} for p, d, n in self.files]
        return json.dumps({"sha256": self.sha256, "files": entries}, sort_keys=True).encode()


def file_sha256(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(sha256, size) of one file: the same digest a dataset file gets."""
    return path_digest(path)


def listing_sha256(files: Any) -> str:
    """The digest of a directory from its (name, digest) entries: the same as ``Dataset.from_file``'s."""
    h = hashlib.sha256()
    for name, digest, *_ in sorted(files, key=lambda f: os.fsencode(f[0])):
        h.update(os.fsencode(name) + f"\0{digest}\n".encode())
    return h.hexdigest()


def digest_path(path: str | os.PathLike[str]) -> Digest:
    p = Path(path)
    if not p.is_dir():
        sha, size = file_sha256(p)
        return Digest(sha, size, "file")
    files = []
    for f in sorted((f for f in p.rglob("*") if f.is_file()), key=lambda f: os.fsencode(f.relative_to(p).as_posix())):
        sha, size = file_sha256(f)
        files.append((f.relative_to(p).as_posix(), sha, size))
    return Digest(listing_sha256(files), sum(n for _, _, n in files), "directory", tuple(files))


def media_type(path: str | os.PathLike[str], kind: str) -> str:
    if kind == "directory":
        return "inode/directory"
    guessed, _ = mimetypes.guess_type(os.fspath(path), strict=False)
    return guessed or "application/octet-stream"


#: File endings that say the flavor when the log call did not.
_BY_SUFFIX = {".joblib": "sklearn", ".pkl": "sklearn", ".skops": "skops", ".keras": "keras", ".pt": "pytorch",
              ".pth": "pytorch"}  # fmt: skip


def flavor_of(name: str, flavor: str | None, info: Mapping[str, Any] | None) -> str:
    """The flavor given at log time, else what the logged file's name says (``.joblib``, ``.keras``...)."""
    if flavor:
        return flavor
    suffix = Path(name).suffix.lower()
    if suffix == ".ckpt" and info and info.get("class"):
        return "lightning"
    return _BY_SUFFIX.get(suffix, "file")


# ----------------------------------------------------------------------- store
class ArtifactStore:
    """One fsspec location; ``url`` may carry credentials, ``public`` never does."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        if not isinstance(url, str) or not url.strip():
            raise ValidationError(f"an artifact store is an fsspec URL or a folder, got {url!r}", value=url)
        if "://" not in url:
            url = os.path.abspath(os.path.expanduser(url))
        self.url = url
        self.public = public_url(url)
        self.options = dict(options or {})
        self._fs: Any = None
        self._root = ""
        self.protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
        # s3://KEY:SECRET@bucket and az://ACCOUNT:KEY@container: the backend takes them as options.
        found = _USERINFO.match(url)
        names = _URL_CREDENTIALS.get(self.protocol)
        if found and names:
            user, _, password = found.group("userinfo")[:-1].partition(":")
            for name, value in zip(names, (unquote(user), unquote(password)), strict=True):
                if value:
                    self.options.setdefault(name, value)
            self._open_url = self.public
        else:
            self._open_url = url

    def __repr__(self) -> str:
        return f"ArtifactStore({self.public!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["options"])  # type: ignore[misc]

    @property
    def local(self) -> bool:
        return self.protocol in ("file", "local")

    def filesystem(self) -> tuple[Any, str]:
        """The fsspec filesystem and the root path in it; a missing backend names the package to install."""
        if self._fs is None:
            self._fs, self._root = open_filesystem(self._open_url, self.options, shown=masked_url(self.url))
        return self._fs, self._root

    def check(self) -> None:
        """Refuse, now, a URL whose backend cannot be loaded (the caller sees it at ``Tracker(...)``)."""
        self.filesystem()

    def path(self, key: str) -> str:
        _, root = self.filesystem()
        return f"{root.rstrip('/')}/{key}" if root else key

    def location(self, key: str) -> str:
        """Where ``key`` is, as a URL without credentials (shown to people, kept in the ledger)."""
        return f"{self.public.rstrip('/')}/{key}"

    def has(self, key: str) -> bool:
        fs, _ = self.filesystem()
        with _unreachable(self):
            return bool(fs.exists(self.path(key)))

    def put(self, local: str | os.PathLike[str], key: str) -> None:
        """Copy a local file to ``key``; a local folder gets it whole or not at all (written aside, renamed)."""
        fs, _ = self.filesystem()
        target = self.path(key)
        with _unreachable(self):
            if self.local:
                folder = os.path.dirname(target)
                os.makedirs(folder, exist_ok=True)
                partial = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex}.partial")
                try:
                    shutil.copyfile(local, partial)
                    os.replace(partial, target)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(partial)
                return
            parent = target.rsplit("/", 1)[0]
            with contextlib.suppress(Exception):
                fs.makedirs(parent, exist_ok=True)
            fs.put_file(os.fspath(local), target)

    def put_bytes(self, data: bytes, key: str) -> None:
        with tempfile.NamedTemporaryFile(delete=False) as fh:
            fh.write(data)
        try:
            self.put(fh.name, key)
        finally:
            os.unlink(fh.name)

    def get(self, key: str, local: str | os.PathLike[str]) -> None:
        fs, _ = self.filesystem()
        with _unreachable(self):
            if not fs.exists(self.path(key)):
                raise ArtifactIntegrityError(
                    f"{self.location(key)} is missing from the artifact store {self.public}", value=key
                )
            fs.get_file(self.path(key), os.fspath(local))

    def read_bytes(self, key: str) -> bytes:
        fs, _ = self.filesystem()
        with _unreachable(self):
            if not fs.exists(self.path(key)):
                raise ArtifactIntegrityError(
                    f"{self.location(key)} is missing from the artifact store {self.public}", value=key
                )
            return bytes(fs.cat_file(self.path(key)))

    @staticmethod
    def key_of(digest: Digest) -> str:
        """The key the ledger records for an artifact: a file's blob, a directory's manifest."""
        return blob_key(digest.sha256) if digest.kind == "file" else manifest_key(digest.sha256)

    def store(self, source: str | os.PathLike[str], digest: Digest) -> str:
        """Upload what is not stored yet; returns the key the ledger records (a file's blob, a directory's manifest)."""
        if digest.kind == "file":
            key = blob_key(digest.sha256)
            if not self.has(key):
                self.put(source, key)
            return key
        for name, sha, _ in digest.files:
            if not self.has(blob_key(sha)):
                self.put(Path(source) / name, blob_key(sha))
        key = manifest_key(digest.sha256)
        if not self.has(key):
            self.put_bytes(digest.manifest(), key)
        return key


def open_filesystem(url: str, options: Mapping[str, Any], *, shown: str) -> tuple[Any, str]:
    import fsspec
    from fsspec.core import url_to_fs

    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError as e:
        extra = EXTRAS.get(protocol)
        hint = f'pip install "modeltrail[{extra}]"' if extra else f"install the fsspec backend for {protocol}://"
        raise ConfigurationError(
            f"the artifact store {shown} needs a package that is not installed: {hint}", value=shown
        ) from e
    except ValueError as e:
        raise ConfigurationError(
            f"the artifact store {shown} uses an unknown protocol {protocol!r}", value=shown
        ) from e
    try:
        fs, root = url_to_fs(url, **options)
    except ImportError as e:
        raise ConfigurationError(f"the artifact store {shown} cannot be opened: {e}", value=shown) from e
    except (TypeError, ValueError) as e:
        raise ConfigurationError(
            f"the artifact store {shown} cannot be opened: {_scrub(str(e), url)}", value=shown
        ) from e
    return fs, root


def _scrub(text: str, url: str) -> str:
    """An error's text without the credentials of ``url``."""
    m = _USERINFO.match(url)
    if m:
        text = text.replace(m.group("userinfo"), f"{REDACTED}@")
        for part in m.group("userinfo")[:-1].split(":"):
            if part:
                text = text.replace(part, REDACTED)
    return text


@contextlib.contextmanager
def _unreachable(store: ArtifactStore) -> Iterator[None]:
    """A store that cannot be reached (network, refused, timed out) is an outage, like the database's."""
    try:
        yield
    except (ModeltrailError, FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise
    except PermissionError as e:
        raise StorageUnavailableError(
            f"the artifact store {store.public} refused access: {_scrub(str(e), store.url)}"
        ) from e
    except Exception as e:  # botocore, aiohttp, OSError: every backend has its own
        raise StorageUnavailableError(
            f"the artifact store {store.public} cannot be reached: {type(e).__name__}: {_scrub(str(e), store.url)}"
        ) from e


# --------------------------------------------------------------------- staging
class Staging:
    """Bytes waiting for an unreachable store, beside the database's spool: ``<spool dir>/artifacts``.

    ``blobs/<sha256>`` are copies taken when the store was down (the source may change after);
    ``pending/<artifact sha256>.json`` names what one artifact still needs uploaded. Any process of
    the database uploads them (under a file lock) once the store answers, then asks the ledger to
    mark the artifact ``stored``.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def stage(self, source: str | os.PathLike[str], digest: Digest, store_url: str) -> None:
        from ._spool import private_folder

        blobs = private_folder(self.folder / "blobs")
        pending = private_folder(self.folder / "pending")
        wanted = [(Path(source), digest.sha256)] if digest.kind == "file" else [
            (Path(source) / name, sha) for name, sha, _ in digest.files
        ]  # fmt: skip
        for path, sha in wanted:
            target = blobs / sha
            if not target.exists():
                partial = blobs / f".{sha}.{uuid.uuid4().hex}.partial"
                shutil.copyfile(path, partial)
                got, _ = file_sha256(partial)
                if got != sha:  # changed since the writer hashed it: the logged bytes are gone
                    partial.unlink()
                    raise ValidationError(
                        f"{path} changed while it was being logged (sha256 {sha} expected, {got} found)",
                        value=str(path),
                    )
                os.replace(partial, target)
        record = {
            "sha256": digest.sha256,
            "kind": digest.kind,
            "manifest": digest.manifest().decode() if digest.kind == "directory" else None,
            "store": store_url,
            "staged_at": time.time(),
        }
        tmp = pending / f".{digest.sha256}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, pending / f"{digest.sha256}.json")

    def waiting(self) -> list[str]:
        folder = self.folder / "pending"
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def upload(self, store: ArtifactStore) -> list[str]:
        """Upload what is staged; returns the artifact digests now stored. Stops at the first outage."""
        if not self.waiting():
            return []
        from filelock import FileLock, Timeout

        done: list[str] = []
        try:
            with FileLock(str(self.folder / "upload.lock"), timeout=0):
                for sha in self.waiting():
                    record_path = self.folder / "pending" / f"{sha}.json"
                    try:
                        record = json.loads(record_path.read_text())
                    except (OSError, ValueError):
                        continue
                    self._upload_one(store, record)
                    record_path.unlink()
                    done.append(sha)
                self._drop_unneeded_blobs()
        except Timeout:
            return done  # another process of this database is uploading them
        return done

    def _upload_one(self, store: ArtifactStore, record: Mapping[str, Any]) -> None:
        blobs = self.folder / "blobs"
        if record["kind"] == "file":
            entries = [(record["sha256"],)]
        else:
            entries = [(f["sha256"],) for f in json.loads(record["manifest"])["files"]]
        for (sha,) in entries:
            if not store.has(blob_key(sha)):
                store.put(blobs / sha, blob_key(sha))
        if record["kind"] == "directory" and not store.has(manifest_key(record["sha256"])):
            store.put_bytes(record["manifest"].encode(), manifest_key(record["sha256"]))

    def _drop_unneeded_blobs(self) -> None:
        needed: set[str] = set()
        for sha in self.waiting():
            with contextlib.suppress(OSError, ValueError):
                record = json.loads((self.folder / "pending" / f"{sha}.json").read_text())
                if record["kind"] == "file":
                    needed.add(record["sha256"])
                else:
                    needed.update(f["sha256"] for f in json.loads(record["manifest"])["files"])
        blobs = self.folder / "blobs"
        if blobs.is_dir():
            for blob in blobs.iterdir():
                if blob.name not in needed and not blob.name.startswith("."):
                    with contextlib.suppress(OSError):
                        blob.unlink()


# ----------------------------------------------------------------- reading back
def cache_root(directory: str | os.PathLike[str] | None = None) -> Path:
    """The local cache of downloaded artifacts: the argument, ``MODELTRAIL_CACHE_DIR``, or the user's cache."""
    return local_dir(directory, ENV_CACHE, "artifacts")


@dataclass(frozen=True)
class Wanted:
    """What the ledger says an artifact is: enough to fetch and verify it."""

    label: str  # "model churn-rf version 4, artifact 'model'": errors name it
    sha256: str
    kind: str
    state: str
    key: str | None
    source_path: str | None


def fetch(wanted: Wanted, store: ArtifactStore | None, cache: Path, *, refresh: bool = False) -> Path:
    """The artifact as a verified local path (a file or a directory), downloading into ``cache`` if needed.

    Every file's sha256 is checked against the ledger before the path is returned; a cached copy
    that no longer matches is fetched again, and bytes that do not match in the store are an
    :class:`ArtifactIntegrityError` naming the artifact and the file.
    """
    if wanted.state == "local":
        return _verified_source(wanted)
    if wanted.state == "pending":
        raise ArtifactNotStoredError(
            f"{wanted.label} is not stored yet: its bytes wait in the upload staging of the machine that logged it "
            "until the artifact store can be reached (any modeltrail process there uploads them)",
            value=wanted.sha256,
        )
    if store is None:
        raise ConfigurationError(
            f"{wanted.label} is in an artifact store, but this Tracker has none: pass Tracker(uri, artifacts=URL) "
            f"or set {ENV_ARTIFACTS}",
            value=wanted.label,
        )
    if wanted.kind == "file":
        return _cached_file(wanted.sha256, store, cache, wanted.label, refresh=refresh)
    return _cached_directory(wanted, store, cache, refresh=refresh)


def _verified_source(wanted: Wanted) -> Path:
    path = Path(wanted.source_path or "")
    if not wanted.source_path or not path.exists():
        raise ArtifactNotStoredError(
            f"{wanted.label} was recorded without an artifact store, and its file {wanted.source_path} is not on "
            "this machine",
            value=wanted.source_path,
        )
    found = digest_path(path)
    if found.sha256 != wanted.sha256:
        raise ArtifactIntegrityError(
            f"{wanted.label}: {path} has sha256 {found.sha256}, the ledger recorded {wanted.sha256}; "
            "it was changed after it was logged and is not loaded",
            value=str(path),
        )
    return path


def _cached_file(sha256: str, store: ArtifactStore, cache: Path, label: str, *, refresh: bool = False) -> Path:
    target = cache / "sha256" / sha256[:2] / sha256
    if target.exists() and not refresh:
        got, _ = file_sha256(target)
        if got == sha256:
            return target
        target.unlink()  # a damaged cache entry: fetch it again
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{sha256}.{uuid.uuid4().hex}.partial")
    try:
        store.get(blob_key(sha256), partial)
        got, _ = file_sha256(partial)
        if got != sha256:
            raise ArtifactIntegrityError(
                f"{label}: {store.location(blob_key(sha256))} has sha256 {got}, the ledger recorded {sha256}; "
                "the stored file was changed or damaged and is not loaded",
                value=store.location(blob_key(sha256)),
            )
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return target


def _cached_directory(wanted: Wanted, store: ArtifactStore, cache: Path, *, refresh: bool) -> Path:
    key = wanted.key or manifest_key(wanted.sha256)
    manifest = json.loads(store.read_bytes(key))
    files = [(f["path"], f["sha256"], f["size"]) for f in manifest["files"]]
    if listing_sha256(files) != wanted.sha256:
        raise ArtifactIntegrityError(
            f"{wanted.label}: the manifest {store.location(key)} does not list the files the ledger recorded "
            f"(sha256 {wanted.sha256}); it is not loaded",
            value=store.location(key),
        )
    target = cache / "dirs" / wanted.sha256
    if target.is_dir() and not refresh:
        with contextlib.suppress(OSError):
            if all(file_sha256(target / name)[0] == sha for name, sha, _ in files):
                return target
        shutil.rmtree(target, ignore_errors=True)
    partial = target.with_name(f".{wanted.sha256}.{uuid.uuid4().hex}.partial")
    try:
        for name, sha, _ in files:
            if name.startswith("/") or ".." in Path(name).parts:
                raise ArtifactIntegrityError(
                    f"{wanted.label}: the manifest names {name!r} outside its folder", value=name
                )
            blob = _cached_file(sha, store, cache, f"{wanted.label} ({name})", refresh=refresh)
            dest = partial / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(blob, dest)
        partial.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target
