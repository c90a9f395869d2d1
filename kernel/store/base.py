"""The encrypted conversation store: what both databases share.

Message bodies and system/persona text are sealed before they are written; the session id,
sequence number and role are bound as associated data, so rows cannot be swapped or
replayed, whichever database holds them. A turn is one transaction, durable when
`append_turn` returns: a crash of any process loses nothing acknowledged.

A backend (`sqlite`, `postgres`) supplies the connection, its transactions and how its
errors map onto StoreBusy / StoreFull / StoreUnavailable; the SQL here is written with `?`
placeholders and runs on both.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.crypto import CryptoError, load_master_key, new_data_key, open_sealed, seal

logger = logging.getLogger("onlycs.store")

MASTER_ALGORITHM = "aes-256-gcm"


@dataclass(frozen=True)
class StoredMessage:
    role: str
    content: str


class StoreError(Exception):
    pass


class StoreBusy(StoreError):
    """Another writer holds the lock the turn needs: nothing was written; retry shortly."""


class StoreUnavailable(StoreBusy):
    """The database server cannot be reached: nothing was written; retry shortly."""


class StoreFull(StoreError):
    """The disk (or the file-size limit) has no room for the turn: nothing was written."""


@dataclass(frozen=True)
class Migration:
    """One numbered schema step, applied once, in order, at start (`schema_migrations`)."""
    version: int
    description: str
    statements: tuple[str, ...]


def _record_aad(session_id: str, seq: int, role: str) -> bytes:
    return f"onlycs-msg\0{session_id}\0{seq}\0{role}".encode()


def _owed_aad(reply_id: str, channel: str) -> bytes:
    return f"onlycs-owed\0{reply_id}\0{channel}".encode()


def _key_aad(key_id: int, algorithm: str) -> bytes:
    return f"onlycs-dek\0{key_id}\0{algorithm}".encode()


class ConversationStore(ABC):
    """One store interface; `kernel.store.open_store` picks the database from the config."""

    backend: str

    def __init__(self, master_key_file: Path, algorithm: str = "aes-256-gcm"):
        self.algorithm = algorithm
        self._master = load_master_key(master_key_file)
        self.corrupt_records = 0  # records left out of a history for failing authentication
        self._keys: dict[int, tuple[str, bytes]] = {}

    def _start(self) -> None:
        """Bring the schema up to date, then load (or make) the data keys."""
        self._migrate()
        self._load_keys()
        if self.active_key_id() is None:
            self.rotate_key()

    # -- what a backend supplies ----------------------------------------------------

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """Commits on success, rolls back on error: no partial turn is ever visible.
        Holds the write lock for its whole length."""

    @abstractmethod
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one read (outside a transaction)."""

    @abstractmethod
    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """One statement inside `_transaction`; returns the cursor."""

    @abstractmethod
    def _lock(self, name: str) -> None:
        """Inside a transaction, until it ends: the writers of one thing (a session, the data
        keys, the schema) go one at a time, across processes and nodes."""

    @abstractmethod
    def _migrations(self) -> Sequence[Migration]: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- schema ---------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._transaction():
            self._lock("schema")
            self._run("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
                      "KEY, description TEXT NOT NULL, applied REAL NOT NULL)")
            done = {row[0] for row in self._run("SELECT version FROM schema_migrations")}
            for step in self._migrations():
                if step.version in done:
                    continue
                for statement in step.statements:
                    self._run(statement)
                self._run("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                          (step.version, step.description, time.time()))
                logger.info("conversation store: applied migration %d (%s)", step.version,
                            step.description)

    def schema_version(self) -> int:
        return self._rows("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0]

    # -- data keys ------------------------------------------------------------------

    def _load_keys(self) -> None:
        for key_id, algorithm, nonce, wrapped in self._rows(
                "SELECT id, algorithm, nonce, wrapped FROM data_keys"):
            try:
                key = open_sealed(MASTER_ALGORITHM, self._master, bytes(nonce), bytes(wrapped),
                                  _key_aad(key_id, algorithm))
            except CryptoError:
                raise CryptoError("the master key does not open this store's data keys: "
                                  "wrong master key file?") from None
            self._keys[key_id] = (algorithm, key)

    def _key(self, key_id: int) -> tuple[str, bytes]:
        # Another process (`onlycs conversations rotate-key`) may have added keys.
        if key_id not in self._keys:
            self._load_keys()
        return self._keys[key_id]

    def active_key_id(self) -> int | None:
        rows = self._rows("SELECT id FROM data_keys WHERE active = 1")
        return rows[0][0] if rows else None

    def rotate_key(self) -> int:
        """A new data key for new writes; older keys stay to decrypt older records."""
        key = new_data_key(self.algorithm)
        with self._transaction():
            self._lock("data_keys")
            key_id = 1 + self._run("SELECT COALESCE(MAX(id), 0) FROM data_keys").fetchone()[0]
            nonce, wrapped = seal(MASTER_ALGORITHM, self._master, key,
                                  _key_aad(key_id, self.algorithm))
            self._run("UPDATE data_keys SET active = 0")
            self._run("INSERT INTO data_keys VALUES (?, ?, ?, ?, ?, 1)",
                      (key_id, self.algorithm, nonce, wrapped, time.time()))
        self._keys[key_id] = (self.algorithm, key)
        return key_id

    # -- records --------------------------------------------------------------------

    def append_turn(self, session_id: str, messages: list[StoredMessage]) -> int:
        """Append messages as one atomic, durable turn; returns the last sequence number."""
        if not session_id or not messages:
            raise StoreError("a turn needs a session id and at least one message")
        key_id = self.active_key_id()
        algorithm, key = self._key(key_id)
        now = time.time()
        with self._transaction():
            self._lock(f"session:{session_id}")
            seq = self._run("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE session_id = ?",
                            (session_id,)).fetchone()[0]
            for message in messages:
                seq += 1
                nonce, sealed = seal(algorithm, key, message.content.encode(),
                                     _record_aad(session_id, seq, message.role))
                self._run("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (session_id, seq, message.role, key_id, nonce, sealed, now))
        return seq

    def has_session(self, session_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM messages WHERE session_id = ? LIMIT 1",
                               (session_id,)))

    def sessions_named(self, name: str) -> list[str]:
        """Stored session ids `<owner>/<name>`: the same client id under every key."""
        suffix = f"/{name}"
        rows = self._rows("SELECT DISTINCT session_id FROM messages "
                          "WHERE substr(session_id, length(session_id) - ? + 1) = ?",
                          (len(suffix), suffix))
        return sorted(r[0] for r in rows)

    def _opened(self, session_id: str, rows: list[tuple], *, skip_corrupt: bool
                ) -> Iterator[dict]:
        for seq, role, key_id, nonce, sealed, created in rows:
            algorithm, key = self._key(key_id)
            try:
                text = open_sealed(algorithm, key, bytes(nonce), bytes(sealed),
                                   _record_aad(session_id, seq, role)).decode()
            except CryptoError as exc:
                if not skip_corrupt:
                    raise CryptoError(f"session {session_id} message {seq}: {exc}") from None
                logger.error("conversation store: session %s message %d fails "
                             "authentication (%s); left out of the history", session_id, seq,
                             exc)
                self.corrupt_records += 1
                continue
            yield {"seq": seq, "role": role, "content": text, "created": created}

    def export(self, session_id: str, *, skip_corrupt: bool = False) -> list[dict]:
        """Decrypted messages of a session; a record that fails authentication raises, or
        with `skip_corrupt` is left out (logged; counted in `corrupt_records`)."""
        rows = self._rows("SELECT seq, role, key_id, nonce, ciphertext, created FROM messages "
                          "WHERE session_id = ? ORDER BY seq", (session_id,))
        return list(self._opened(session_id, rows, skip_corrupt=skip_corrupt))

    def recent(self, session_id: str, limit: int) -> list[dict]:
        """The last `limit` messages of a session, oldest first; a corrupt record is left out
        (the session goes on), never returned."""
        return self.export(session_id, skip_corrupt=True)[-limit:] if limit else []

    def reencrypt(self) -> int:
        """Re-seal every record not under the active data key; returns how many."""
        active = self.active_key_id()
        algorithm, key = self._key(active)
        stale = self._rows("SELECT session_id, seq, role, key_id, nonce, ciphertext "
                           "FROM messages WHERE key_id != ?", (active,))
        for session_id, seq, role, key_id, nonce, sealed in stale:
            old_algorithm, old_key = self._key(key_id)
            aad = _record_aad(session_id, seq, role)
            plain = open_sealed(old_algorithm, old_key, bytes(nonce), bytes(sealed), aad)
            new_nonce, new_sealed = seal(algorithm, key, plain, aad)
            with self._transaction():
                self._run("UPDATE messages SET key_id = ?, nonce = ?, ciphertext = ? "
                          "WHERE session_id = ? AND seq = ?",
                          (active, new_nonce, new_sealed, session_id, seq))
        return len(stale)

    # -- appliance state (not conversations: adapter registry, router rules) -----------

    def state_generations(self) -> dict[str, int]:
        """Each state entry's generation: one cheap read to see whether anything changed."""
        return dict(self._rows("SELECT name, generation FROM appliance_state"))

    def read_state(self, name: str) -> tuple[int, str] | None:
        rows = self._rows("SELECT generation, value FROM appliance_state WHERE name = ?",
                          (name,))
        return (rows[0][0], rows[0][1]) if rows else None

    def write_state(self, name: str, value: str) -> int:
        """Replace one entry; returns its new generation."""
        with self._transaction():
            self._lock(f"state:{name}")
            row = self._run("SELECT generation FROM appliance_state WHERE name = ?",
                            (name,)).fetchone()
            generation = (row[0] if row else 0) + 1
            if row:
                self._run("UPDATE appliance_state SET value = ?, generation = ?, updated = ? "
                          "WHERE name = ?", (value, generation, time.time(), name))
            else:
                self._run("INSERT INTO appliance_state VALUES (?, ?, ?, ?)",
                          (name, value, generation, time.time()))
        return generation

    # -- replies owed to a chat platform (sealed like messages: they hold the user's text)

    def owe_reply(self, reply_id: str, channel: str, run: str, payload: str) -> None:
        """Record (or update) a reply still owed, held by the appliance run `run`."""
        key_id = self.active_key_id()
        algorithm, key = self._key(key_id)
        nonce, sealed = seal(algorithm, key, payload.encode(), _owed_aad(reply_id, channel))
        with self._transaction():
            self._run("INSERT INTO owed_replies VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) "
                      "DO UPDATE SET run = excluded.run, key_id = excluded.key_id, "
                      "nonce = excluded.nonce, ciphertext = excluded.ciphertext",
                      (reply_id, channel, run, key_id, nonce, sealed, time.time()))

    def settle_reply(self, reply_id: str) -> None:
        with self._transaction():
            self._run("DELETE FROM owed_replies WHERE id = ?", (reply_id,))

    def claim_owed_replies(self, channel: str, run: str, max_age_s: float
                           ) -> list[tuple[str, str]]:
        """(id, payload) of each reply an earlier run still owed, now held by `run`: of
        several router replicas starting at once, each reply goes to one. Older than
        `max_age_s` is dropped (a reply that late helps nobody); so is one that fails
        authentication (logged)."""
        with self._transaction():
            self._run("DELETE FROM owed_replies WHERE channel = ? AND created < ?",
                      (channel, time.time() - max_age_s))
        claimed = []
        for reply_id, old_run, key_id, nonce, sealed in self._rows(
                "SELECT id, run, key_id, nonce, ciphertext FROM owed_replies "
                "WHERE channel = ? AND run != ? ORDER BY created", (channel, run)):
            with self._transaction():
                taken = self._run("UPDATE owed_replies SET run = ? WHERE id = ? AND run = ?",
                                  (run, reply_id, old_run)).rowcount
            if not taken:
                continue
            algorithm, key = self._key(key_id)
            try:
                claimed.append((reply_id, open_sealed(algorithm, key, bytes(nonce),
                                                      bytes(sealed),
                                                      _owed_aad(reply_id, channel)).decode()))
            except CryptoError as exc:
                logger.error("conversation store: owed reply %s fails authentication (%s); "
                             "dropped", reply_id, exc)
                self.corrupt_records += 1
                self.settle_reply(reply_id)
        return claimed

    def purge(self, older_than_s: float) -> int:
        """Delete records older than the retention period; returns how many."""
        cutoff = time.time() - older_than_s
        with self._transaction():
            return self._run("DELETE FROM messages WHERE created < ?", (cutoff,)).rowcount
