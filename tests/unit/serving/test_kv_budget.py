"""The CPU profile's KV cache size and engine layout, from the tier's config and the
model's own config.json (the bundled SmolLM2-135M: 30 layers, 3 KV heads of 64)."""

from __future__ import annotations

import json
from pathlib import Path

from kernel.config import AppConfig
from kernel.config_sections import TierConfig
from serving.app import engine_options, tier_env
from serving.kv_budget import kv_bytes_per_token, kv_cache_bytes, kv_cache_tokens


def write_model(folder: Path, **fields: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(fields))
    return folder


def test_bytes_per_token_come_from_the_models_layers_heads_and_dtype(tmp_path: Path) -> None:
    smollm = write_model(tmp_path / "a", num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, head_dim=64, hidden_size=576)
    assert kv_bytes_per_token(smollm, "bfloat16") == 2 * 30 * 3 * 64 * 2
    assert kv_bytes_per_token(smollm, "float32") == 2 * 30 * 3 * 64 * 4
    # no head_dim, no KV heads (plain multi-head attention): hidden / heads, all heads
    plain = write_model(tmp_path / "b", num_hidden_layers=2, num_attention_heads=4,
                        hidden_size=256)
    assert kv_bytes_per_token(plain, "bfloat16") == 2 * 2 * 4 * 64 * 2


def test_tokens_hold_every_sequence_and_always_one_at_full_length() -> None:
    assert kv_cache_tokens(TierConfig(max_num_seqs=64, cpu_kv_tokens_per_seq=512)) == 32768
    assert kv_cache_tokens(TierConfig(max_num_seqs=4, cpu_kv_tokens_per_seq=100)) == 2048
    assert kv_cache_tokens(TierConfig(max_num_seqs=40, cpu_kv_tokens_per_seq=100)) == 40 * 112


def test_a_size_in_the_config_wins(tmp_path: Path) -> None:
    model = write_model(tmp_path, num_hidden_layers=1, num_attention_heads=1, hidden_size=8)
    assert kv_cache_bytes(TierConfig(cpu_kvcache_space_gib=1.5), model, "bfloat16") == 3 * 2**29


def test_the_shipped_tiers_get_a_sized_cache_and_one_engine_process() -> None:
    config = AppConfig()
    small, large = (engine_options(config, n, config.tiers[n]) for n in ("small", "large"))
    per_token = 2 * 30 * 3 * 64 * (2 if small["dtype"] == "bfloat16" else 4)
    assert small["kv_cache_memory_bytes"] == 64 * 512 * per_token
    assert large["kv_cache_memory_bytes"] == 32 * 512 * per_token
    assert small["distributed_executor_backend"] == "uni"
    env = tier_env(config, config.tiers["small"])
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" and "VLLM_CPU_KVCACHE_SPACE" not in env
    two = AppConfig.model_validate({"tiers": {"small": {"cpu_single_process": False}}})
    assert "distributed_executor_backend" not in engine_options(two, "small", two.tiers["small"])
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in tier_env(two, two.tiers["small"])
    gpu = AppConfig.model_validate({"profile": "gpu"})
    assert "kv_cache_memory_bytes" not in engine_options(gpu, "small", gpu.tiers["small"])
