"""Published knowledge-base versions on disk: `v000001.jsonl`, `v000002.jsonl`, ... and
`CURRENT` naming the one in force. A publish writes the new file whole, then replaces
`CURRENT` atomically (rename), so a reader sees the old version or the new one, never half;
older files stay for rollback."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from knowledge.entries import Entry, KnowledgeBase
from knowledge.files import read_file

_NAME = re.compile(r"^v(\d{6})\.jsonl$")


class VersionStore:
    def __init__(self, folder: Path):
        self.folder = folder

    @property
    def pointer(self) -> Path:
        return self.folder / "CURRENT"

    def versions(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.folder.iterdir()
                      if (m := _NAME.match(p.name)))

    def current_version(self) -> int | None:
        try:
            return int(self.pointer.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def path(self, version: int) -> Path:
        return self.folder / f"v{version:06d}.jsonl"

    def load(self, version: int) -> KnowledgeBase:
        return KnowledgeBase.of(version, read_file(self.path(version)))

    def publish(self, entries: list[Entry]) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        version = max(self.versions(), default=0) + 1
        body = "".join(json.dumps(e.model_dump(exclude_defaults=True), ensure_ascii=False)
                       + "\n" for e in entries)
        _write_atomic(self.path(version), body)
        self.point(version)
        return version

    def point(self, version: int) -> None:
        if not self.path(version).exists():
            raise FileNotFoundError(f"knowledge-base version {version} does not exist")
        _write_atomic(self.pointer, f"{version}\n")


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
