from __future__ import annotations

from pathlib import Path

from models.manifest import MANIFEST_NAME, verify_folder, write_manifest


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "weights.bin").write_bytes(b"\x00" * 4096)
    write_manifest(folder, {"name": "t"})
    return folder


def test_fresh_manifest_verifies(tmp_path: Path) -> None:
    assert verify_folder(_folder(tmp_path)).ok


def test_changed_missing_and_extra_files_are_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "sub" / "weights.bin").write_bytes(b"\x01" * 4096)
    (folder / "config.json").unlink()
    (folder / "extra.txt").write_text("x")
    assert verify_folder(folder).problems == [
        "config.json: missing", "sub/weights.bin: sha256 mismatch",
        "extra.txt: not in manifest"]


def test_folder_without_manifest(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / MANIFEST_NAME).unlink()
    result = verify_folder(folder)
    assert not result.ok and MANIFEST_NAME in result.problems[0]
