"""Adapters on local disk, under one root: what may be loaded, checked before it is.

An adapter folder must lie inside the adapters root (no `..`, no symlink leading
out), hold every file its manifest lists with the right checksum, be made for the
small tier's base model (same weights sha256) and fit the engine's maximum rank.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from models.manifest import MANIFEST_NAME, read_manifest, sha256_file, verify_folder

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ADAPTER_KIND = "onlycs-lora-adapter"


class AdapterError(ValueError):
    def __init__(self, message: str, param: str = "path"):
        super().__init__(message)
        self.param = param


def base_model_sha256(base: Path) -> str:
    """The checksum that ties an adapter to its base: the weights file's sha256."""
    try:
        return read_manifest(base)["files"]["model.safetensors"]
    except (FileNotFoundError, KeyError):
        return sha256_file(base / "model.safetensors")


def check_name(name: str) -> str:
    if not NAME.match(name or "") or ".." in name:
        raise AdapterError("adapter name must be 1-64 letters, digits, '.', '_' or '-'",
                           param="name")
    return name


def resolve_inside(root: Path, folder: str) -> Path:
    root = root.resolve()
    candidate = Path(folder)
    path = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if path != root and root not in path.parents:
        raise AdapterError(f"adapter folder must be inside the adapters root {root}")
    if not path.is_dir():
        raise AdapterError(f"no adapter folder at {path}")
    for item in path.rglob("*"):
        real = item.resolve()
        if root not in real.parents:
            raise AdapterError(f"{item.name} links outside the adapters root")
    return path


def validate(root: Path, name: str, folder: str, *, base_sha256: str, max_rank: int) -> Path:
    """The adapter's folder if it may be loaded; else AdapterError saying why."""
    check_name(name)
    path = resolve_inside(root, folder)
    if not (path / MANIFEST_NAME).is_file():
        raise AdapterError(f"{path} is not an adapter: no {MANIFEST_NAME} "
                           "(made by `onlycs lora train`)")
    problems = verify_folder(path).problems
    if problems:
        raise AdapterError(f"adapter files incomplete or changed: {'; '.join(problems[:3])}")
    meta = read_manifest(path).get("meta", {})
    if meta.get("kind") != ADAPTER_KIND:
        raise AdapterError(f"{path} is not a LoRA adapter manifest")
    if meta.get("base_model_sha256") != base_sha256:
        raise AdapterError("adapter was trained for another base model than the small "
                           "tier's (base model sha256 differs)")
    config = json.loads((path / "adapter_config.json").read_text())
    rank = int(config.get("r", meta.get("rank", 0)))
    if rank > max_rank:
        raise AdapterError(f"adapter rank {rank} exceeds the engine's max_lora_rank "
                           f"{max_rank}")
    return path
