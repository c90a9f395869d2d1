"""Checksum manifests: every file of a model or adapter folder with its sha256."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "onlycs-manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _content_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_NAME
    )


def write_manifest(folder: Path, meta: dict[str, object]) -> Path:
    files = {str(p.relative_to(folder)): sha256_file(p) for p in _content_files(folder)}
    manifest = {"meta": meta, "files": files}
    target = folder / MANIFEST_NAME
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(target)
    return target


@contextmanager
def publish(target: Path, meta: dict[str, object]) -> Iterator[Path]:
    """A folder beside `target` to fill; with its manifest it replaces `target` only when
    the block succeeds, so an interrupted run never leaves a half-written folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield work
        write_manifest(work, meta)
        work.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class VerifyResult:
    folder: Path
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_folder(folder: Path) -> VerifyResult:
    """Compare a folder with its manifest: missing, changed and unlisted files."""
    if not (folder / MANIFEST_NAME).is_file():
        return VerifyResult(folder, [f"no {MANIFEST_NAME} (run `onlycs models prepare`)"])
    try:
        expected: dict[str, str] = read_manifest(folder)["files"]
    except (ValueError, KeyError) as exc:
        return VerifyResult(folder, [f"{MANIFEST_NAME} is unreadable: {exc}"])
    problems = []
    present = {str(p.relative_to(folder)) for p in _content_files(folder)}
    for name, digest in sorted(expected.items()):
        if name not in present:
            problems.append(f"{name}: missing")
        elif sha256_file(folder / name) != digest:
            problems.append(f"{name}: sha256 mismatch")
    problems += [f"{name}: not in manifest" for name in sorted(present - expected.keys())]
    return VerifyResult(folder, problems)
