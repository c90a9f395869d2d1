"""Where each tier's model lives: a prepared model name or a local folder."""

from __future__ import annotations

from pathlib import Path

from kernel.config import AppConfig, TierConfig
from models.manifest import MANIFEST_NAME, verify_folder


class ModelNotPrepared(RuntimeError):
    pass


def model_dir(config: AppConfig, tier: TierConfig) -> Path:
    candidate = Path(tier.model)
    folder = candidate if candidate.is_absolute() else config.models.root / tier.model
    if not (folder / "config.json").is_file():
        raise ModelNotPrepared(
            f"model folder {folder} has no config.json: run `onlycs models prepare` "
            "or set the tier's `model` to a local HF model folder"
        )
    return folder


def check_model(folder: Path) -> list[str]:
    """Problems with a model folder; a folder without a manifest is an operator's own."""
    if not (folder / MANIFEST_NAME).exists():
        return []
    return verify_folder(folder).problems
