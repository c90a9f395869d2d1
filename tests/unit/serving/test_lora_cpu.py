"""The grouped CPU LoRA ops give what vLLM's own torch ops give, on random adapters and
token-to-adapter maps like the ones a batch carries (one adapter, several, slots picked
by negative index), and install() puts them where vLLM's CPU LoRA wrapper calls them."""

from __future__ import annotations

import importlib

import pytest
import torch
from vllm.lora.ops.torch_ops import lora_ops

from kernel.config import AppConfig
from serving import lora_cpu, vllm_plugin
from serving.app import tier_env

# vLLM's functions as shipped: captured at collection, before any test installs ours.
REFERENCE = {name: getattr(lora_ops, name) for name in lora_cpu.GROUPED}
SGMV = {name: getattr(lora_ops, name)
        for name in ("sgmv_shrink", "sgmv_expand", "sgmv_expand_slice")}

INDEX_MAPS = {
    "one adapter, decode-sized": [2] * 7,
    "one adapter, prefill-sized": [1] * 40,
    "two adapters interleaved": [0, 1, 0, 0, 1, 1, 0] * 6,
    "no adapter slots (-1) mixed in": [-1, 3, -1, 0, 3, 3, -1] * 6,
    "mixed, below the grouping size": [0, 1, 0, 0, 1, 1, 0],
}


def _weights(out: int, inner: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(4, 1, out, inner, generator=torch.Generator().manual_seed(out),
                       dtype=torch.float32).to(dtype)


@pytest.mark.parametrize("indices", INDEX_MAPS.values(), ids=INDEX_MAPS.keys())
@pytest.mark.parametrize("weight_dtype", [torch.float32, torch.bfloat16])
def test_shrink_matches_vllm(indices: list[int], weight_dtype: torch.dtype) -> None:
    tokens = torch.tensor(indices)
    x = torch.randn(len(indices), 64)
    w = _weights(8, 64, weight_dtype)
    expected, got = torch.zeros(len(indices), 8), torch.zeros(len(indices), 8)
    REFERENCE["bgmv_shrink"](x, w, expected, tokens, 0.5)
    lora_cpu.bgmv_shrink(x, w, got, tokens, 0.5)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("indices", INDEX_MAPS.values(), ids=INDEX_MAPS.keys())
@pytest.mark.parametrize("add_inputs", [True, False])
def test_expand_and_expand_slice_match_vllm(indices: list[int], add_inputs: bool) -> None:
    tokens = torch.tensor(indices)
    x = torch.randn(len(indices), 8)
    w = _weights(48, 8)
    start = torch.randn(len(indices), 64)
    expected, got = start.clone(), start.clone()
    REFERENCE["bgmv_expand"](x, w, expected, tokens, add_inputs)
    lora_cpu.bgmv_expand(x, w, got, tokens, add_inputs)
    torch.testing.assert_close(got, expected)
    expected, got = start.clone(), start.clone()
    REFERENCE["bgmv_expand_slice"](x, w, expected, tokens, 16, 48, add_inputs)
    lora_cpu.bgmv_expand_slice(x, w, got, tokens, 16, 48, add_inputs)
    torch.testing.assert_close(got, expected)
    assert torch.equal(got[:, :16], start[:, :16])  # outside the slice: untouched


def test_grouping_is_used_where_it_pays() -> None:
    x = torch.randn(40, 8)
    assert lora_cpu._fits(x, torch.tensor([0, 1] * 20))
    assert lora_cpu._fits(x[:7], torch.tensor([3] * 7))
    assert not lora_cpu._fits(x[:7], torch.tensor([0, 1, 0, 0, 1, 1, 0]))
    assert not lora_cpu._fits(x[:1], torch.tensor([1, 1, 1]))


def test_a_single_row_broadcast_falls_back_to_vllm() -> None:
    tokens = torch.tensor([1, 1, 1])
    x, w = torch.randn(1, 8), _weights(16, 8)
    expected, got = torch.zeros(3, 16), torch.zeros(3, 16)
    REFERENCE["bgmv_expand"](x, w, expected, tokens, True)
    lora_cpu.bgmv_expand(x, w, got, tokens, True)
    torch.testing.assert_close(got, expected)


def test_prefill_path_matches_after_install() -> None:
    """sgmv_* (prefill: one adapter per sequence) expand per sequence, then call bgmv_*."""
    seq_lens, adapters = torch.tensor([3, 5, 2]), torch.tensor([1, -1, 1])
    x, w = torch.randn(10, 32), _weights(8, 32)
    meta = (torch.tensor([0, 3, 8]), seq_lens, adapters, 3, 5, 10)
    expected = torch.zeros(10, 8)
    SGMV["sgmv_shrink"](x, w, expected, *meta, 2.0)
    lora_cpu.install()
    try:
        got = torch.zeros(10, 8)
        lora_ops.sgmv_shrink(x, w, got, *meta, 2.0)
    finally:
        for name, function in REFERENCE.items():
            setattr(lora_ops, name, function)
    torch.testing.assert_close(got, expected)


def test_plugin_installs_into_the_cpu_wrapper_only_when_asked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from vllm.lora.ops import torch_ops

    wrapper = importlib.import_module("vllm.lora.punica_wrapper.punica_cpu")
    monkeypatch.delenv(vllm_plugin.ENV, raising=False)
    for module in (lora_ops, torch_ops, wrapper):
        for name in lora_cpu.GROUPED:
            monkeypatch.setattr(module, name, REFERENCE[name])
    monkeypatch.delenv(vllm_plugin.GROUPED_LORA_ENV, raising=False)
    vllm_plugin.register()
    assert wrapper.bgmv_shrink is REFERENCE["bgmv_shrink"]
    monkeypatch.setenv(vllm_plugin.GROUPED_LORA_ENV, "1")
    vllm_plugin.register()
    for module in (lora_ops, torch_ops, wrapper):
        for name, function in lora_cpu.GROUPED.items():
            assert getattr(module, name) is function, (module.__name__, name)


def test_only_lora_tiers_on_the_cpu_profile_get_it() -> None:
    config = AppConfig()
    assert tier_env(config, config.tiers["small"])[vllm_plugin.GROUPED_LORA_ENV] == "1"
    assert vllm_plugin.GROUPED_LORA_ENV not in tier_env(config, config.tiers["large"])
    off = AppConfig.model_validate({"tiers": {"small": {"cpu_grouped_lora": False}}})
    assert vllm_plugin.GROUPED_LORA_ENV not in tier_env(off, off.tiers["small"])
    gpu = AppConfig.model_validate({"profile": "gpu"})
    assert vllm_plugin.GROUPED_LORA_ENV not in tier_env(gpu, gpu.tiers["small"])
