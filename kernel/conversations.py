"""The encrypted conversation store (SQLite, WAL).

Message bodies and system/persona text are sealed before they are written; the
session id, sequence number and role are bound as associated data, so rows cannot
be swapped or replayed. A turn is one transaction with synchronous=FULL: once
`append_turn` returns, a crash of any process loses nothing of it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kernel.crypto import CryptoError, load_master_key, new_data_key, open_sealed, seal

logger = logging.getLogger("onlycs.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS data_keys (
    id INTEGER PRIMARY KEY, algorithm TEXT NOT NULL, nonce BLOB NOT NULL,
    wrapped BLOB NOT NULL, created REAL NOT NULL, active INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL,
    key_id INTEGER NOT NULL REFERENCES data_keys(id), nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL, created REAL NOT NULL, PRIMARY KEY (session_id, seq));
CREATE INDEX IF NOT EXISTS messages_created ON messages(created);
"""
MASTER_ALGORITHM = "aes-256-gcm"


@dataclass(frozen=True)
class StoredMessage:
    role: str
    content: str


class StoreBusy(Exception):
    """The database is locked by another writer (or failed to start a transaction)."""


class StoreFull(Exception):
    """The disk (or the file-size limit) has no room for the turn: nothing was written."""


def _full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or \
        "full" in str(exc)


class StoreError(Exception):
    pass


def _record_aad(session_id: str, seq: int, role: str) -> bytes:
    return f"onlycs-msg\0{session_id}\0{seq}\0{role}".encode()


def _key_aad(key_id: int, algorithm: str) -> bytes:
    return f"onlycs-dek\0{key_id}\0{algorithm}".encode()


class ConversationStore:
    def __init__(self, path: Path, master_key_file: Path, algorithm: str = "aes-256-gcm",
                 busy_timeout_s: float = 5.0):
        self.algorithm = algorithm
        self._master = load_master_key(master_key_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the router's worker threads, guarded by a lock; a write
        # waits `busy_timeout_s` for another process's lock, then fails as StoreBusy.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=busy_timeout_s)
        self._lock = threading.RLock()
        self.corrupt_records = 0  # records left out of a history for failing authentication
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._keys: dict[int, tuple[str, bytes]] = {}
        self._load_keys()
        if self.active_key_id() is None:
            self.rotate_key()

    # -- data keys ------------------------------------------------------------------

    def _load_keys(self) -> None:
        rows = self._db.execute("SELECT id, algorithm, nonce, wrapped FROM data_keys")
        for key_id, algorithm, nonce, wrapped in rows:
            try:
                key = open_sealed(MASTER_ALGORITHM, self._master, nonce, wrapped,
                                  _key_aad(key_id, algorithm))
            except CryptoError:
                raise CryptoError("the master key does not open this store's data keys: "
                                  "wrong master key file?") from None
            self._keys[key_id] = (algorithm, key)

    def _key(self, key_id: int) -> tuple[str, bytes]:
        # Another process (`onlycs conversations rotate-key`) may have added keys.
        if key_id not in self._keys:
            with self._lock:
                self._load_keys()
        return self._keys[key_id]

    def active_key_id(self) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT id FROM data_keys WHERE active = 1").fetchone()
        return row[0] if row else None

    def rotate_key(self) -> int:
        """A new data key for new writes; older keys stay to decrypt older records."""
        key = new_data_key(self.algorithm)
        with self._transaction():
            key_id = 1 + self._db.execute("SELECT COALESCE(MAX(id), 0) FROM data_keys"
                                          ).fetchone()[0]
            nonce, wrapped = seal(MASTER_ALGORITHM, self._master, key,
                                  _key_aad(key_id, self.algorithm))
            self._db.execute("UPDATE data_keys SET active = 0")
            self._db.execute("INSERT INTO data_keys VALUES (?, ?, ?, ?, ?, 1)",
                             (key_id, self.algorithm, nonce, wrapped, time.time()))
        self._keys[key_id] = (self.algorithm, key)
        return key_id

    # -- records --------------------------------------------------------------------

    def _transaction(self) -> _Commit:
        return _Commit(self._db, self._lock)

    def append_turn(self, session_id: str, messages: list[StoredMessage]) -> int:
        """Append messages as one atomic, durable turn; returns the last sequence number."""
        if not session_id or not messages:
            raise StoreError("a turn needs a session id and at least one message")
        key_id = self.active_key_id()
        algorithm, key = self._key(key_id)
        now = time.time()
        try:
            return self._append(session_id, messages, key_id, algorithm, key, now)
        except sqlite3.OperationalError as exc:
            if _full(exc):
                raise StoreFull(str(exc)) from None
            raise

    def _append(self, session_id: str, messages: list[StoredMessage], key_id: int,
                algorithm: str, key: bytes, now: float) -> int:
        with self._transaction():
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM messages "
                                   "WHERE session_id = ?", (session_id,)).fetchone()[0]
            for message in messages:
                seq += 1
                nonce, sealed = seal(algorithm, key, message.content.encode(),
                                     _record_aad(session_id, seq, message.role))
                self._db.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (session_id, seq, message.role, key_id, nonce, sealed, now))
        return seq

    def has_session(self, session_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM messages WHERE session_id = ? LIMIT 1",
                                    (session_id,)).fetchone() is not None

    def sessions_named(self, name: str) -> list[str]:
        """Stored session ids `<owner>/<name>`: the same client id under every key."""
        suffix = f"/{name}"
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT session_id FROM messages WHERE substr(session_id, -?) = ?",
                (len(suffix), suffix)).fetchall()
        return sorted(r[0] for r in rows)

    def export(self, session_id: str, *, skip_corrupt: bool = False) -> list[dict]:
        """Decrypted messages of a session; a record that fails authentication raises, or
        with `skip_corrupt` is left out (logged; counted in `corrupt_records`)."""
        with self._lock:
            rows = self._db.execute("SELECT seq, role, key_id, nonce, ciphertext, created "
                                    "FROM messages WHERE session_id = ? ORDER BY seq",
                                    (session_id,)).fetchall()
        out = []
        for seq, role, key_id, nonce, sealed, created in rows:
            algorithm, key = self._key(key_id)
            try:
                text = open_sealed(algorithm, key, nonce, sealed,
                                   _record_aad(session_id, seq, role)).decode()
            except CryptoError as exc:
                if not skip_corrupt:
                    raise CryptoError(f"session {session_id} message {seq}: {exc}") from None
                logger.error("conversation store: session %s message %d fails "
                             "authentication (%s); left out of the history", session_id, seq,
                             exc)
                self.corrupt_records += 1
                continue
            out.append({"seq": seq, "role": role, "content": text, "created": created})
        return out

    def recent(self, session_id: str, limit: int) -> list[dict]:
        """The last `limit` messages of a session, oldest first; a corrupt record is left out
        (the session goes on), never returned."""
        return self.export(session_id, skip_corrupt=True)[-limit:] if limit else []

    def reencrypt(self) -> int:
        """Re-seal every record not under the active data key; returns how many."""
        active = self.active_key_id()
        algorithm, key = self._key(active)
        with self._lock:
            stale = self._db.execute("SELECT session_id, seq, role, key_id, nonce, ciphertext "
                                     "FROM messages WHERE key_id != ?", (active,)).fetchall()
        for session_id, seq, role, key_id, nonce, sealed in stale:
            old_algorithm, old_key = self._key(key_id)
            aad = _record_aad(session_id, seq, role)
            plain = open_sealed(old_algorithm, old_key, nonce, sealed, aad)
            new_nonce, new_sealed = seal(algorithm, key, plain, aad)
            with self._transaction():
                self._db.execute("UPDATE messages SET key_id = ?, nonce = ?, ciphertext = ? "
                                 "WHERE session_id = ? AND seq = ?",
                                 (active, new_nonce, new_sealed, session_id, seq))
        return len(stale)

    def purge(self, older_than_s: float) -> int:
        """Delete records older than the retention period; returns how many."""
        cutoff = time.time() - older_than_s
        with self._transaction():
            return self._db.execute("DELETE FROM messages WHERE created < ?",
                                    (cutoff,)).rowcount

    def close(self) -> None:
        self._db.close()


class _Commit:
    """Commits on success, rolls back on error: no partial turn is ever visible."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock):
        self._db = db
        self._lock = lock

    def __enter__(self) -> _Commit:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            # Without this release the lock stayed held and every later write hung.
            self._lock.release()
            raise StoreBusy(str(exc)) from None
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        try:
            if kind:
                self._db.execute("ROLLBACK")
                return
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error:
                # A failed COMMIT (disk full) leaves the transaction open: every later
                # BEGIN would fail. Undo it; the error still reaches the caller.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        finally:
            self._lock.release()
