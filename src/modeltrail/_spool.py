"""A durable local spool for when the database is away.

An SQLite file in WAL mode with ``synchronous=FULL``: one row per operation or
metric batch, in order, with a sequence number; a row is deleted only after the
database has committed it. Operations are idempotent (see ``operations``), so a
replay that is interrupted and repeated never duplicates anything.

Each process writes its own spool file and holds an exclusive lock on it while it
lives (a :class:`filelock.FileLock`, so this works on Windows too). A spool whose
lock can be taken belongs to a process that has ended: the next modeltrail process
for the same database drains it in the background, and ``modeltrail sync`` drains it
on demand. Spools live in the user's cache directory (``platformdirs``) unless
``MODELTRAIL_SPOOL_DIR`` says otherwise.

Why the rest looks like it does:

* The folder is keyed by the database's *identity* (backend, host with the loopback
  spellings made one, port with the dialect's default, database name; for SQLite the
  absolute file path), never by the user or password, so a rotated password or
  ``localhost`` for ``127.0.0.1`` still finds the spool. Folders written under the old
  key (a hash of the full URL) are still read: their spools name their URL inside.
* Spools hold training data: files are created 0600 in 0700 folders.
* A spool file that cannot be read (garbage, truncated, emptied) is renamed aside with
  ``.damaged`` and named in a :class:`ModeltrailWarning`; the others still replay.
* An entry the database refuses is appended to ``dead-letters.jsonl`` beside the spools
  with what it was, which training, and why, so it never blocks the entries behind it.
* Only the process that created a spool may close or delete it: a forked child that
  inherits the object leaves it alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ._config import local_dir, mask_password
from ._errors import ModeltrailWarning

ENV_SPOOL_DIR = "MODELTRAIL_SPOOL_DIR"
DEAD_LETTERS = "dead-letters.jsonl"
DAMAGED = ".damaged"
_LOOPBACK = {"", "localhost", "127.0.0.1", "::1", "[::1]", "0:0:0:0:0:0:0:1"}
_DEFAULT_PORTS = {"mysql": 3306, "mariadb": 3306, "postgresql": 5432}
_FILE_MODE = 0o600
_DIR_MODE = 0o700


def spool_root(directory: str | os.PathLike[str] | None = None) -> Path:
    """Where spools live: the argument, ``MODELTRAIL_SPOOL_DIR``, or the user's cache directory."""
    return local_dir(directory, ENV_SPOOL_DIR, "spool")


def database_identity(uri: str) -> str:
    """What names the database itself, whatever the URL's spelling and credentials.

    ``mysql|localhost|3306|ledger``; for SQLite ``sqlite|/absolute/path``.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(uri)
    except ArgumentError:
        return uri  # not a URL: the caller fails elsewhere; never a password to hide here
    backend = url.get_backend_name()
    backend = "mysql" if backend == "mariadb" else backend
    database = url.database or ""
    if backend == "sqlite":
        if database in ("", ":memory:") or database.startswith("file:"):
            return f"sqlite|{database}"
        return f"sqlite|{os.path.realpath(os.path.expanduser(database))}"
    host = (url.host or "").lower()
    host = "localhost" if host in _LOOPBACK else host
    port = url.port or _DEFAULT_PORTS.get(backend, 0)
    return f"{backend}|{host}|{port}|{database}"


def spool_dir_for(uri: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """One folder per target database, so a spool is only ever replayed into its own ledger."""
    digest = hashlib.sha256(database_identity(uri).encode()).hexdigest()[:16]
    return spool_root(directory) / f"db-{digest}"


def spool_dirs_for(uri: str, directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folder for ``uri`` and older folders (keyed by a hash of the whole URL) holding spools for it."""
    folders = [spool_dir_for(uri, directory)]
    root = spool_root(directory)
    if not root.is_dir():
        return folders
    identity = database_identity(uri)
    for legacy in sorted(root.iterdir()):
        if legacy.name.startswith("db-") or not legacy.is_dir():
            continue
        written_for = _recorded_uri(legacy)
        if written_for is not None and database_identity(written_for) == identity:
            folders.append(legacy)
    return folders


def _recorded_uri(folder: Path) -> str | None:
    """The (password-masked) URL a spool in an old-style folder was written for."""
    for path in folder.glob("*.spool"):
        with contextlib.suppress(sqlite3.Error, OSError):
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            try:
                row = db.execute("SELECT value FROM meta WHERE key = 'uri'").fetchone()
            finally:
                db.close()
            if row:
                return str(row[0])
    return None


def private_folder(folder: Path) -> Path:
    """Make ``folder`` (0700) if needed; raises OSError when it cannot be made."""
    folder.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(folder, _DIR_MODE)
    return folder


class Spool:
    """One spool file; safe to use from one writer thread plus readers."""

    def __init__(self, path: Path, *, uri: str | None = None, owned: bool = True) -> None:
        self.path = path
        self.pid = os.getpid()
        private_folder(path.parent)
        self._lock: FileLock | None = None
        if owned:
            self._lock = _lock_of(path)
            self._lock.acquire()  # held for the spool's life
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, _FILE_MODE))  # SQLite gives -wal/-shm the same mode
        with contextlib.suppress(OSError):
            os.chmod(path, _FILE_MODE)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
                " payload TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            if uri is not None:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('uri', ?)", (mask_password(uri),))
        except BaseException:
            self._db.close()
            if self._lock is not None:
                self._lock.release()
            raise
        self._mutex = threading.Lock()

    @classmethod
    def create(cls, uri: str, directory: str | os.PathLike[str] | None = None) -> Spool:
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}.spool"
        return cls(spool_dir_for(uri, directory) / name, uri=uri)

    def __len__(self) -> int:
        with self._mutex:
            return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def append(self, kind: str, payload: dict[str, Any]) -> int:
        text = json.dumps(payload, allow_nan=True, separators=(",", ":"))
        with self._mutex:
            cursor = self._db.execute(
                "INSERT INTO entries (kind, payload, created) VALUES (?, ?, ?)", (kind, text, time.time())
            )
            return int(cursor.lastrowid or 0)

    def entries(self, limit: int = 100) -> Iterator[tuple[int, str, dict[str, Any] | str]]:
        """Oldest entries first; a payload that is not valid JSON comes back as its raw text."""
        with self._mutex:
            rows = self._db.execute("SELECT seq, kind, payload FROM entries ORDER BY seq LIMIT ?", (limit,)).fetchall()
        for seq, kind, payload in rows:
            try:
                decoded = json.loads(payload)
            except (ValueError, TypeError):
                yield seq, str(kind), str(payload)
                continue
            yield seq, str(kind), decoded if isinstance(decoded, dict) else str(payload)

    def ack(self, seq: int) -> None:
        """The database has committed entry ``seq``: forget it."""
        with self._mutex:
            self._db.execute("DELETE FROM entries WHERE seq = ?", (seq,))

    def close(self, *, remove_if_empty: bool = True) -> None:
        if os.getpid() != self.pid:
            return  # a forked child's inherited copy: the file and its lock are the parent's
        try:
            empty = len(self) == 0
        except sqlite3.Error:
            empty = False
        with self._mutex:
            self._db.close()
        if empty and remove_if_empty:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
        if self._lock is not None:
            _release(self._lock, remove=empty and remove_if_empty)
            self._lock = None


def training_of(kind: str, payload: Any) -> str:
    """Which training an entry belongs to, in words, for a report."""
    if not isinstance(payload, dict):
        return "unknown (the entry cannot be read)"
    if kind == "points":
        uuids = sorted({str(r[0]) for r in payload.get("rows", []) if isinstance(r, list | tuple) and r})
        return ", ".join(uuids) or "unknown"
    model = f" of model {payload['model']!r}" if kind == "start" and "model" in payload else ""
    return f"{payload.get('uuid', 'unknown')}{model}"


def describe(kind: str, payload: Any) -> str:
    """An operation in words, its names in ``ascii()`` so that text no database can store is still shown."""
    if not isinstance(payload, dict):
        return kind
    if kind == "points":
        keys = sorted({ascii(r[1]) for r in payload.get("rows", ())})
        return f"{len(payload.get('rows', ()))} point(s) of {', '.join(keys)}"
    if kind == "params":
        return f"param(s) {', '.join(map(ascii, payload.get('params', {})))}"
    if kind == "stage":
        return f"stage {(payload.get('stage') or {}).get('name')!a}"
    return kind


def dead_letter(folder: Path, *, source: str, kind: str, payload: Any, reason: str) -> Path:
    """Append one refused entry to ``folder``'s dead-letter file (0600) and say so once, loudly."""
    target = folder / DEAD_LETTERS
    record = {
        "set_aside_at": time.time(),
        "spool": source,
        "kind": kind,
        "training": training_of(kind, payload),
        "reason": reason,
        "payload": payload,
    }
    line = json.dumps(record, allow_nan=True, default=str, ensure_ascii=True) + "\n"
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _FILE_MODE)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    warnings.warn(
        f"modeltrail: the database refused a spooled {kind} of training {record['training']}: {reason}; "
        f"it is set aside in {target} and the entries behind it replay",
        ModeltrailWarning,
        stacklevel=2,
    )
    return target


def dead_letters(uri: str, directory: str | os.PathLike[str] | None = None) -> int:
    """Entries set aside for ``uri`` because the database refused them."""
    total = 0
    for folder in spool_dirs_for(uri, directory):
        with contextlib.suppress(FileNotFoundError), open(folder / DEAD_LETTERS, "rb") as f:
            total += sum(1 for _ in f)
    return total


def quarantined(uri: str, directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """Spool files for ``uri`` set aside because they could not be read."""
    return sorted(p for folder in spool_dirs_for(uri, directory) for p in folder.glob(f"*.spool{DAMAGED}"))


def quarantine(path: Path, reason: str) -> Path:
    """Rename a damaged spool (and its WAL) aside so that it no longer blocks the others; warn naming it."""
    target = path.with_name(path.name + DAMAGED)
    for suffix in ("-wal", "-shm", ""):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{target}{suffix}")
    warnings.warn(
        f"modeltrail: the spool {path} cannot be read ({reason}); it is set aside as {target} "
        f"and the other spools replay. What it held is not in the database.",
        ModeltrailWarning,
        stacklevel=2,
    )
    return target


def _emptied(path: Path) -> bool:
    """A spool file with no bytes and no WAL: truncated, whatever it held is gone."""
    wal = Path(f"{path}-wal")
    return path.stat().st_size == 0 and (not wal.exists() or wal.stat().st_size == 0)


def _lock_of(spool_path: Path) -> FileLock:
    # Not thread-local: the writer thread takes it, the thread that closes the writer releases it.
    return FileLock(spool_path.with_suffix(".lock"), mode=_FILE_MODE, thread_local=False)


def _release(lock: FileLock, *, remove: bool) -> None:
    """Release a spool's lock, first removing its file while still holding it when the spool is gone."""
    if remove:
        with contextlib.suppress(OSError):  # Windows cannot remove an open file: it stays, harmless
            os.unlink(lock.lock_file)
    lock.release()


def _open_orphan(path: Path) -> Spool | None:
    """Open an ended process's spool, or quarantine it when it cannot be read."""
    try:
        if _emptied(path):
            quarantine(path, "the file is empty: it was truncated")
            return None
        spool = Spool(path, owned=False)
        len(spool)  # reads the table: a truncated or overwritten file fails here
        return spool
    except FileNotFoundError:
        return None  # its owner emptied and removed it between the listing and now: nothing to adopt
    except sqlite3.Error as e:
        quarantine(path, f"{type(e).__name__}: {e}")
        return None


@contextlib.contextmanager
def orphans(uri: str, directory: str | os.PathLike[str] | None = None) -> Iterator[list[Spool]]:
    """Spools for ``uri`` left by processes that have ended, locked for this caller while in use.

    Damaged ones are quarantined on the way (see :func:`quarantine`).
    """
    found: list[Spool] = []
    locks: list[tuple[Path, FileLock]] = []
    try:
        for path in _spool_files(uri, directory):
            lock = _lock_of(path)
            try:
                lock.acquire(blocking=False)
            except Timeout:
                continue  # its process is alive and owns it
            locks.append((path, lock))
            spool = _open_orphan(path)
            if spool is not None:
                found.append(spool)
        yield found
    finally:
        for spool in found:
            with contextlib.suppress(sqlite3.Error):
                spool.close()
        for path, lock in locks:
            _release(lock, remove=not path.exists())


def _spool_files(uri: str, directory: str | os.PathLike[str] | None) -> list[Path]:
    return [p for folder in spool_dirs_for(uri, directory) if folder.is_dir() for p in sorted(folder.glob("*.spool"))]


def pending(uri: str, directory: str | os.PathLike[str] | None = None) -> int:
    """Entries waiting in every spool for ``uri`` (owned or orphaned); unreadable files count nothing."""
    return sum(_count(path) for path in _spool_files(uri, directory))


def held_by_others(uri: str, directory: str | os.PathLike[str] | None = None) -> tuple[int, int]:
    """Entries in spools another process holds: ``(held by a replaying process, held by their live owner)``.

    A spool is named after the process that made it; when that process has ended and the
    lock is still held, another process (``modeltrail sync``, a new training) is replaying it.
    """
    replaying = owner = 0
    for path in _spool_files(uri, directory):
        creator = path.name.split("-", 1)[0]
        if creator == str(os.getpid()):
            continue
        lock = _lock_of(path)
        try:
            lock.acquire(blocking=False)
        except Timeout:
            n = _count(path)
            if _alive(int(creator)) if creator.isdigit() else True:
                owner += n
            else:
                replaying += n
            continue
        lock.release()
    return replaying, owner


def _count(path: Path) -> int:
    with contextlib.suppress(sqlite3.Error):
        db = sqlite3.connect(str(path), timeout=30)
        try:
            return int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
        finally:
            db.close()
    return 0


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill there would end the process: assume it lives
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
