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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ._config import mask_password

ENV_SPOOL_DIR = "MODELTRAIL_SPOOL_DIR"


def spool_root(directory: str | os.PathLike[str] | None = None) -> Path:
    """Where spools live: the argument, ``MODELTRAIL_SPOOL_DIR``, or the user's cache directory."""
    if directory is not None:
        return Path(directory)
    env = os.environ.get(ENV_SPOOL_DIR)
    if env:
        return Path(env)
    from platformdirs import user_cache_path

    return user_cache_path("modeltrail", appauthor=False) / "spool"


def spool_dir_for(uri: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """One folder per target database, so a spool is only ever replayed into its own ledger."""
    return spool_root(directory) / hashlib.sha256(uri.encode()).hexdigest()[:16]


class Spool:
    """One spool file; safe to use from one writer thread plus readers."""

    def __init__(self, path: Path, *, uri: str | None = None, owned: bool = True) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock: FileLock | None = None
        if owned:
            self._lock = _lock_of(path)
            self._lock.acquire()  # held for the spool's life
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
            " payload TEXT NOT NULL, created REAL NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        if uri is not None:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('uri', ?)", (mask_password(uri),))
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

    def entries(self, limit: int = 100) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """Oldest entries first."""
        with self._mutex:
            rows = self._db.execute("SELECT seq, kind, payload FROM entries ORDER BY seq LIMIT ?", (limit,)).fetchall()
        for seq, kind, payload in rows:
            yield seq, kind, json.loads(payload)

    def ack(self, seq: int) -> None:
        """The database has committed entry ``seq``: forget it."""
        with self._mutex:
            self._db.execute("DELETE FROM entries WHERE seq = ?", (seq,))

    def close(self, *, remove_if_empty: bool = True) -> None:
        empty = len(self) == 0
        with self._mutex:
            self._db.close()
        if empty and remove_if_empty:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
        if self._lock is not None:
            _release(self._lock, remove=empty and remove_if_empty)
            self._lock = None


def _lock_of(spool_path: Path) -> FileLock:
    # Not thread-local: the writer thread takes it, the thread that closes the writer releases it.
    return FileLock(spool_path.with_suffix(".lock"), thread_local=False)


def _release(lock: FileLock, *, remove: bool) -> None:
    """Release a spool's lock, first removing its file while still holding it when the spool is gone."""
    if remove:
        with contextlib.suppress(OSError):  # Windows cannot remove an open file: it stays, harmless
            os.unlink(lock.lock_file)
    lock.release()


@contextlib.contextmanager
def orphans(uri: str, directory: str | os.PathLike[str] | None = None) -> Iterator[list[Spool]]:
    """Spools for ``uri`` left by processes that have ended, locked for this caller while in use."""
    folder = spool_dir_for(uri, directory)
    found: list[Spool] = []
    locks: list[tuple[Path, FileLock]] = []
    try:
        for path in sorted(folder.glob("*.spool")) if folder.exists() else []:
            lock = _lock_of(path)
            try:
                lock.acquire(blocking=False)
            except Timeout:
                continue  # its process is alive and owns it
            locks.append((path, lock))
            found.append(Spool(path, owned=False))
        yield found
    finally:
        for spool in found:
            spool.close()
        for path, lock in locks:
            _release(lock, remove=not path.exists())


def pending(uri: str, directory: str | os.PathLike[str] | None = None) -> int:
    """Entries waiting in every spool for ``uri`` (owned or orphaned)."""
    folder = spool_dir_for(uri, directory)
    total = 0
    for path in folder.glob("*.spool") if folder.exists() else []:
        db = sqlite3.connect(str(path), timeout=30)
        try:
            total += int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
        except sqlite3.OperationalError:
            pass
        finally:
            db.close()
    return total
