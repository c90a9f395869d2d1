"""The CPU profile's KV cache, sized from what a tier's sequences can hold instead of a
fixed number of GiB: on CPU the cache is ordinary memory, allocated and touched whole at
start, so every unneeded GiB is a GiB of resident memory the box never gets back."""

from __future__ import annotations

import json
from pathlib import Path

from kernel.config_sections import TierConfig

BYTES_PER_VALUE = {"bfloat16": 2, "float16": 2, "float32": 4}
BLOCK_TOKENS = 16  # vLLM's CPU block: a sequence holds whole blocks


def kv_bytes_per_token(model: Path, dtype: str) -> int:
    """Keys and values of one token over all layers, from the model's config.json."""
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    layers = int(config["num_hidden_layers"])
    heads = int(config.get("num_key_value_heads") or config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])
    return 2 * layers * heads * head_dim * BYTES_PER_VALUE[dtype]


def kv_cache_tokens(tier: TierConfig) -> int:
    """Room for every one of `max_num_seqs` sequences at `cpu_kv_tokens_per_seq` (rounded up
    to whole blocks), and never less than one sequence at `max_model_len`, which vLLM needs
    to start. More sequences or longer ones than that wait their turn in vLLM's queue."""
    per_seq = -(-tier.cpu_kv_tokens_per_seq // BLOCK_TOKENS) * BLOCK_TOKENS
    one_full = -(-tier.max_model_len // BLOCK_TOKENS) * BLOCK_TOKENS
    return max(tier.max_num_seqs * per_seq, one_full)


def kv_cache_bytes(tier: TierConfig, model: Path, dtype: str) -> int:
    if tier.cpu_kvcache_space_gib is not None:
        return int(tier.cpu_kvcache_space_gib * 2**30)
    return kv_cache_tokens(tier) * kv_bytes_per_token(model, dtype)
