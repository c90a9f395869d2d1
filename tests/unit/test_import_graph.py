"""The import graph between top-level packages points one way: operator tools -> serving ->
lora -> models -> knowledge -> kernel -> the SDK. Every import in every module counts, the lazy ones
inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Lowest first: a package may import only packages before it (and itself).
LAYERS = ("onlycs", "kernel", "knowledge", "models", "lora", "serving", "appliance", "perf")


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(LAYERS)


def wrong_way(package: str) -> list[str]:
    allowed = set(LAYERS[:LAYERS.index(package) + 1])
    return [f"{path.relative_to(REPO)} imports {', '.join(sorted(bad))}"
            for path in sorted((REPO / package).rglob("*.py"))
            if (bad := imported_packages(path) - allowed)]


@pytest.mark.parametrize("package", LAYERS)
def test_no_package_imports_a_higher_one(package: str) -> None:
    assert wrong_way(package) == []


def test_every_top_level_package_has_a_layer() -> None:
    packages = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()} - {"tests"}
    assert packages == set(LAYERS)


def test_the_check_sees_an_upward_import_even_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from serving.app import build_app\n")
    assert imported_packages(module) == {"serving"}
