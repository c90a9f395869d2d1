"""The conversation store on PostgreSQL: one store for every router replica of a cluster.

The same sealed records as SQLite (`kernel.store.base`); PostgreSQL sees only ciphertext.
Writers of one session serialise on a transaction-scoped advisory lock, so two replicas on
two nodes appending to one session get consecutive sequence numbers. A commit returns
after the server has flushed its WAL (synchronous_commit is required to be on), so an
acknowledged turn survives a crash of the appliance or of the database server.

The connection is one per store, shared by the router's worker threads behind a lock; a
broken connection (server restarted) is reopened on the next call, and a call that cannot
reach the server fails at once as StoreUnavailable rather than waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from kernel.store.base import (
    ConversationStore,
    Migration,
    StoreBusy,
    StoreError,
    StoreFull,
    StoreUnavailable,
)

MIGRATIONS = (
    Migration(1, "data keys and sealed messages", (
        "CREATE TABLE IF NOT EXISTS data_keys (id INTEGER PRIMARY KEY, algorithm TEXT NOT "
        "NULL, nonce BYTEA NOT NULL, wrapped BYTEA NOT NULL, created DOUBLE PRECISION NOT "
        "NULL, active INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS messages (session_id TEXT NOT NULL, seq INTEGER NOT NULL, "
        "role TEXT NOT NULL, key_id INTEGER NOT NULL REFERENCES data_keys(id), "
        "nonce BYTEA NOT NULL, ciphertext BYTEA NOT NULL, created DOUBLE PRECISION NOT NULL, "
        "PRIMARY KEY (session_id, seq))",
        "CREATE INDEX IF NOT EXISTS messages_created ON messages(created)",
    )),
    Migration(2, "appliance state every router replica shares", (
        "CREATE TABLE appliance_state (name TEXT PRIMARY KEY, value TEXT NOT NULL, "
        "generation INTEGER NOT NULL, updated DOUBLE PRECISION NOT NULL)",
    )),
    Migration(3, "replies owed to a chat platform, sealed, sent on the next start", (
        "CREATE TABLE owed_replies (id TEXT PRIMARY KEY, channel TEXT NOT NULL, "
        "run TEXT NOT NULL, key_id INTEGER NOT NULL REFERENCES data_keys(id), "
        "nonce BYTEA NOT NULL, ciphertext BYTEA NOT NULL, created DOUBLE PRECISION NOT NULL)",
    )),
)

CONNECT_TIMEOUT_S = 5


def _sql(statement: str) -> str:
    # The shared SQL uses `?`; psycopg wants `%s` (no statement here holds a literal `%`).
    return statement.replace("?", "%s")


def _mapped(exc: psycopg.Error) -> Exception:
    if isinstance(exc, pg_errors.DiskFull | pg_errors.OutOfMemory):
        return StoreFull(str(exc))
    if isinstance(exc, pg_errors.LockNotAvailable | pg_errors.QueryCanceled |
                  pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
        return StoreBusy(str(exc))
    if isinstance(exc, psycopg.OperationalError):
        return StoreUnavailable(str(exc))
    return StoreError(f"{type(exc).__name__}: {exc}")


class PostgresStore(ConversationStore):
    backend = "postgresql"

    def __init__(self, dsn: str, master_key_file: Path, algorithm: str = "aes-256-gcm",
                 busy_timeout_s: float = 5.0, password: str | None = None):
        super().__init__(master_key_file, algorithm)
        self._dsn = dsn
        self._password = password
        self._busy_ms = int(busy_timeout_s * 1000)
        self._mutex = threading.RLock()
        self._db: psycopg.Connection | None = None
        self._connection()
        self._start()

    def _connection(self) -> psycopg.Connection:
        if self._db is not None and not self._db.closed and not self._db.broken:
            return self._db
        extra: dict[str, Any] = {"password": self._password} if self._password else {}
        try:
            db = psycopg.connect(self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                 application_name="onlycs", **extra)
        except psycopg.Error as exc:
            raise _mapped(exc) from None
        # A write waits this long for a lock another writer holds, then fails as StoreBusy.
        db.execute(f"SET lock_timeout = {self._busy_ms}")
        db.execute("SET synchronous_commit = on")
        self._db = db
        return db

    def _migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    def _lock(self, name: str) -> None:
        self._run("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"onlycs:{name}",))

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._mutex:
            try:
                return self._connection().execute(_sql(sql), params).fetchall()
            except psycopg.Error as exc:
                raise _mapped(exc) from None

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        assert self._db is not None
        return self._db.execute(_sql(sql), params)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._mutex:
            db = self._connection()
            try:
                with db.transaction():
                    yield
            except psycopg.Error as exc:
                raise _mapped(exc) from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
