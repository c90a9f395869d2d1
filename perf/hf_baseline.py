"""The "traditional Python stack": plain transformers `generate`, one request at a time,
in-process (no HTTP cost, which favours the baseline)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from perf.report import percentile


def run_sequential(model_dir: Path, prompts: list[str], output_len: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria

    torch.set_num_threads(os.cpu_count() or 1)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    model.eval()

    class FirstToken(StoppingCriteria):
        """Called after every generated token; records when the first one was ready."""

        def __init__(self) -> None:
            self.first: float | None = None

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            if self.first is None:
                self.first = time.perf_counter()
            return False

    ttft, latency, tokens = [], [], 0
    started = time.perf_counter()
    with torch.inference_mode():
        for prompt in prompts:
            # Newer transformers return a BatchEncoding here; ask for it explicitly.
            ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                add_generation_prompt=True,
                                                return_tensors="pt",
                                                return_dict=True)["input_ids"]
            watch = FirstToken()
            begun = time.perf_counter()
            out = model.generate(ids, attention_mask=torch.ones_like(ids),
                                 max_new_tokens=output_len, min_new_tokens=output_len,
                                 do_sample=False, stopping_criteria=[watch],
                                 pad_token_id=tokenizer.eos_token_id)
            latency.append(time.perf_counter() - begun)
            ttft.append((watch.first or time.perf_counter()) - begun)
            tokens += out.shape[1] - ids.shape[1]
    wall = time.perf_counter() - started
    return {"concurrency": 1, "requests": len(prompts), "errors": 0, "wall_s": round(wall, 2),
            "req_s": round(len(prompts) / wall, 3), "out_tok_s": round(tokens / wall, 1),
            "ttft_p50_ms": round(percentile(ttft, 50) * 1000, 1),
            "ttft_p99_ms": round(percentile(ttft, 99) * 1000, 1),
            "e2e_p50_ms": round(percentile(latency, 50) * 1000, 1),
            "e2e_p99_ms": round(percentile(latency, 99) * 1000, 1),
            "parameters": sum(p.numel() for p in model.parameters())}
