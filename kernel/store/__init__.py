"""The encrypted conversation store: one interface (`base`), SQLite for one box, PostgreSQL
for a cluster; `open_store` picks the one the config names."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kernel.store.base import (
    ConversationStore,
    StoreBusy,
    StoredMessage,
    StoreError,
    StoreFull,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from kernel.config_sections import StoreConfig

__all__ = ["ConversationStore", "StoreBusy", "StoreError", "StoreFull", "StoreUnavailable",
           "StoredMessage", "open_store"]


def _password(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        if path.stat().st_mode & 0o077:
            raise StoreError(f"store.postgresql_password_file {path}: permissions "
                             f"{path.stat().st_mode & 0o777:04o} are too wide; chmod 600")
        return path.read_text().strip()
    except OSError as exc:
        raise StoreError(f"store.postgresql_password_file {path}: {exc.strerror}") from None


def open_store(config: StoreConfig) -> ConversationStore:
    if config.backend == "postgresql":
        # Imported here: a single box never loads the PostgreSQL driver.
        from kernel.store.postgres import PostgresStore

        password = _password(config.postgresql_password_file)
        return PostgresStore(config.postgresql_dsn, config.master_key_file, config.cipher,
                             config.busy_timeout_s, password=password)
    from kernel.store.sqlite import SQLiteStore

    return SQLiteStore(config.path, config.master_key_file, config.cipher,
                       config.busy_timeout_s)
