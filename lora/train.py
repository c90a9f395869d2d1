"""`onlycs lora train`: teach the small tier's base model the knowledge base with a LoRA
adapter (peft, CPU), then write the adapter with a manifest of what it was made from.

Only the answer tokens are trained on; the chat template is the base model's own, so
the served adapter sees prompts exactly as vLLM renders them.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lora import kb as kb_module
from lora.registry import base_model_sha256
from models.manifest import publish

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class TrainSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    epochs: int = 6
    batch_size: int = 8
    learning_rate: float = 2e-3
    seed: int = 1234
    target_modules: list[str] = field(default_factory=lambda: list(TARGET_MODULES))


def _examples(tokenizer, facts: list[dict]) -> list[tuple[list[int], list[int]]]:
    out = []
    for fact in facts:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": fact["question"]}], tokenize=False,
            add_generation_prompt=True)
        answer = fact["answer"] + tokenizer.eos_token
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        out.append((prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids))
    return out


def _batches(examples: list, size: int, rng: random.Random, pad: int):
    import torch

    order = list(range(len(examples)))
    rng.shuffle(order)
    for start in range(0, len(order), size):
        chunk = [examples[i] for i in order[start:start + size]]
        width = max(len(ids) for ids, _ in chunk)
        ids = [e[0] + [pad] * (width - len(e[0])) for e in chunk]
        labels = [e[1] + [-100] * (width - len(e[1])) for e in chunk]
        mask = [[1] * len(e[0]) + [0] * (width - len(e[0])) for e in chunk]
        yield torch.tensor(ids), torch.tensor(labels), torch.tensor(mask)


def train_adapter(base: Path, kb_path: Path, out: Path, settings: TrainSettings,
                  progress: Progress) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    facts = kb_module.load(kb_path)
    random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=settings.target_modules, task_type="CAUSAL_LM"))
    examples = _examples(tokenizer, facts)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=settings.learning_rate)
    steps = settings.epochs * -(-len(examples) // settings.batch_size)
    rng, step, started = random.Random(settings.seed), 0, time.monotonic()
    model.train()
    for _ in range(settings.epochs):
        for ids, labels, mask in _batches(examples, settings.batch_size, rng,
                                          tokenizer.pad_token_id or 0):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            progress(step, steps, float(loss.detach()))
    meta = {"kind": "onlycs-lora-adapter", "base_model_sha256": base_model_sha256(base),
            "base_model": str(base), "rank": settings.rank,
            "target_modules": settings.target_modules,
            "data_sha256": hashlib.sha256(kb_path.read_bytes()).hexdigest(),
            "facts": len(facts), "settings": asdict(settings), "steps": steps,
            "final_loss": round(float(loss), 4),
            "train_seconds": round(time.monotonic() - started, 1)}
    with publish(out, meta) as work:
        model.save_pretrained(work)
    return meta


def describe(meta: dict) -> str:
    return json.dumps({k: meta[k] for k in ("rank", "facts", "steps", "final_loss",
                                            "train_seconds")})
