"""The conversation store in one SQLite file (WAL, synchronous=FULL): the single-box default.

One connection is shared by the router's worker threads behind a lock; BEGIN IMMEDIATE takes
the database's write lock, so writers of every session, in every process, go one at a time.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kernel.store.base import ConversationStore, Migration, StoreBusy, StoreFull

MIGRATIONS = (
    # Version 1 is the schema stores written before migrations existed already have.
    Migration(1, "data keys and sealed messages", (
        "CREATE TABLE IF NOT EXISTS data_keys (id INTEGER PRIMARY KEY, algorithm TEXT NOT "
        "NULL, nonce BLOB NOT NULL, wrapped BLOB NOT NULL, created REAL NOT NULL, "
        "active INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS messages (session_id TEXT NOT NULL, seq INTEGER NOT NULL, "
        "role TEXT NOT NULL, key_id INTEGER NOT NULL REFERENCES data_keys(id), "
        "nonce BLOB NOT NULL, ciphertext BLOB NOT NULL, created REAL NOT NULL, "
        "PRIMARY KEY (session_id, seq))",
        "CREATE INDEX IF NOT EXISTS messages_created ON messages(created)",
    )),
    Migration(2, "appliance state every router replica shares", (
        "CREATE TABLE appliance_state (name TEXT PRIMARY KEY, value TEXT NOT NULL, "
        "generation INTEGER NOT NULL, updated REAL NOT NULL)",
    )),
    Migration(3, "replies owed to a chat platform, sealed, sent on the next start", (
        "CREATE TABLE owed_replies (id TEXT PRIMARY KEY, channel TEXT NOT NULL, "
        "run TEXT NOT NULL, key_id INTEGER NOT NULL REFERENCES data_keys(id), "
        "nonce BLOB NOT NULL, ciphertext BLOB NOT NULL, created REAL NOT NULL)",
    )),
)


def _full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or \
        "full" in str(exc)


class SQLiteStore(ConversationStore):
    backend = "sqlite"

    def __init__(self, path: Path, master_key_file: Path, algorithm: str = "aes-256-gcm",
                 busy_timeout_s: float = 5.0):
        super().__init__(master_key_file, algorithm)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # A write waits `busy_timeout_s` for another process's lock, then fails as StoreBusy.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=busy_timeout_s)
        self._mutex = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._start()

    def _migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    def _lock(self, name: str) -> None:
        pass  # BEGIN IMMEDIATE already holds the one write lock SQLite has

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._mutex:
            return self._db.execute(sql, params).fetchall()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._db.execute(sql, params)

    def _transaction(self) -> _Commit:
        return _Commit(self._db, self._mutex)

    def close(self) -> None:
        self._db.close()


class _Commit:
    def __init__(self, db: sqlite3.Connection, mutex: threading.RLock):
        self._db = db
        self._mutex = mutex

    def __enter__(self) -> _Commit:
        self._mutex.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            # Without this release the lock stayed held and every later write hung.
            self._mutex.release()
            raise StoreBusy(str(exc)) from None
        except BaseException:
            self._mutex.release()
            raise
        return self

    def __exit__(self, kind: object, exc: object, _tb: object) -> None:
        try:
            if kind:
                self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and _full(exc):
                    raise StoreFull(str(exc)) from None
                return
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                # A failed COMMIT (disk full) leaves the transaction open: every later
                # BEGIN would fail. Undo it; the error still reaches the caller.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if _full(error):
                    raise StoreFull(str(error)) from None
                raise
        finally:
            self._mutex.release()
