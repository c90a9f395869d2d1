"""API keys: created once, shown once, stored only as salted HMAC-SHA256 hashes.

A key reads `ocs-<id>-<secret>`; the id finds the record, the secret is checked in
constant time. Keys are random 256-bit values, so a fast salted hash is as strong
as a slow one against guessing while costing microseconds per request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Scope = Literal["client", "admin"]
PREFIX = "ocs"


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    scope: Scope
    salt: str
    hash: str
    created: float
    revoked: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    persona: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


class KeyFileError(Exception):
    pass


def _digest(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def _read(path: Path) -> list[KeyRecord]:
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [KeyRecord(**item) for item in raw["keys"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a valid key file ({exc})") from None


def _write(path: Path, records: list[KeyRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"keys": [asdict(r) for r in records]}, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


@dataclass
class KeyStore:
    path: Path
    _records: dict[str, KeyRecord] = field(default_factory=dict)
    _signature: tuple[int, int] | None = None

    def list(self) -> list[KeyRecord]:
        return _read(self.path)

    def create(self, name: str, scope: Scope, *, rpm: int | None = None,
               tpm: int | None = None, persona: str | None = None) -> tuple[str, KeyRecord]:
        if not name.strip():
            raise ValueError("name must not be empty")
        records = _read(self.path)
        if any(r.name == name and r.active for r in records):
            raise ValueError(f"an active key named {name!r} already exists")
        key_id, salt = secrets.token_hex(4), secrets.token_hex(16)
        secret = secrets.token_urlsafe(32)
        record = KeyRecord(id=key_id, name=name, scope=scope, salt=salt,
                           hash=_digest(salt, secret), created=time.time(), rpm=rpm, tpm=tpm,
                           persona=persona)
        _write(self.path, [*records, record])
        return f"{PREFIX}-{key_id}-{secret}", record

    def revoke(self, name_or_id: str) -> KeyRecord:
        records = _read(self.path)
        for i, record in enumerate(records):
            if record.active and name_or_id in (record.id, record.name):
                records[i] = KeyRecord(**{**asdict(record), "revoked": time.time()})
                _write(self.path, records)
                return records[i]
        raise ValueError(f"no active key with name or id {name_or_id!r}")

    def _refresh(self) -> None:
        # One stat per check (microseconds): every write replaces the file, so a new
        # inode or mtime means new content, and creations and revocations apply at once.
        try:
            info = self.path.stat()
            signature = (info.st_ino, info.st_mtime_ns)
        except FileNotFoundError:
            signature = (0, 0)
        if signature != self._signature:
            self._records = {r.id: r for r in _read(self.path)}
            self._signature = signature

    def verify(self, presented: str) -> KeyRecord | None:
        """The active record for a presented key, or None."""
        self._refresh()
        parts = presented.split("-", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        record = self._records.get(parts[1])
        if record is None or not record.active:
            return None
        if not hmac.compare_digest(record.hash, _digest(record.salt, parts[2])):
            return None
        return record
