"""Multi-LoRA products for vLLM's CPU build, one matmul per adapter in the batch.

vLLM's CPU LoRA ops (`vllm.lora.ops.torch_ops.lora_ops`) first gather a full copy of the
adapter's weights for every token (`weights[indices]`, tokens x out x rank) and then
multiply token by token (`einsum("bi, boi -> bo")`). A batch nearly always uses one or a
few adapters, so that copy is the whole cost: on 2 cores a 1024-token prefill spent about
1 s per projection in it, and a 16-sequence decode step most of its time
(perf/lora_suite.py has the end-to-end numbers). Here the tokens are grouped by adapter
and each group is one matmul against that adapter's weights (small batches that mix
adapters, where the copy is cheaper, stay with vLLM's functions), with the same index
semantics (a negative index picks a slot from the end, as tensor indexing does) and the
same writes into the output as vLLM's functions, which stay the reference in the tests.

`serving/vllm_plugin.py` installs these in the engine processes of tiers that run on the
CPU profile. This module imports only torch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# Below this many tokens with more than one adapter among them (decode steps of a mixed
# batch), vLLM's per-token copy costs less than a matmul per adapter: on 2 cores a shrink
# and expand pair for 4 adapters took 0.66 ms against 1.22 ms at 16 tokens, and 1.71 ms
# against 1.29 ms at 32 (one adapter: 0.65 against 0.28 ms at 16).
MIXED_MIN_TOKENS = 32


def _plan(inputs: torch.Tensor, indices: torch.Tensor) -> str:
    """"one" (a single adapter: one matmul), "grouped" (a matmul per adapter) or "vllm"
    (vLLM's function: its einsum also broadcasts a single row, and small batches that mix
    adapters are cheaper its way)."""
    if inputs.dim() != 2 or inputs.shape[0] != indices.shape[0]:
        return "vllm"
    if indices.numel() == 0 or bool((indices == indices[0]).all()):
        return "one"
    return "grouped" if indices.numel() >= MIXED_MIN_TOKENS else "vllm"


def _fits(inputs: torch.Tensor, indices: torch.Tensor) -> bool:
    return _plan(inputs, indices) != "vllm"


def grouped_lora_product(inputs: torch.Tensor, weights: torch.Tensor,
                         indices: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """`inputs[t] @ weights[indices[t]].T` for every token t, in `dtype`; None where vLLM's
    own function should run instead.

    weights: (slots, out, in) or (slots, 1, out, in) as vLLM stacks them."""
    plan = _plan(inputs, indices)
    if plan == "vllm":
        return None
    if weights.dim() == 4:
        weights = weights.squeeze(1)
    inputs = inputs.to(dtype)
    if indices.numel() == 0:
        return inputs.new_zeros((0, weights.shape[1]))
    if plan == "one":
        return inputs @ weights[int(indices[0])].to(dtype).T
    product = inputs.new_empty((inputs.shape[0], weights.shape[1]))
    for index in torch.unique(indices).tolist():
        rows = (indices == index).nonzero().squeeze(1)
        product[rows] = inputs[rows] @ weights[index].to(dtype).T
    return product


def bgmv_shrink(inputs: torch.Tensor, lora_b_weights: torch.Tensor,
                output_tensor: torch.Tensor, lora_indices_tensor: torch.Tensor,
                scaling: float = 1.0) -> None:
    outputs = grouped_lora_product(inputs, lora_b_weights, lora_indices_tensor,
                                   output_tensor.dtype)
    if outputs is None:
        return _reference("bgmv_shrink")(inputs, lora_b_weights, output_tensor,
                                         lora_indices_tensor, scaling)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs


def bgmv_expand(inputs: torch.Tensor, lora_b_weights: torch.Tensor,
                output_tensor: torch.Tensor, lora_indices_tensor: torch.Tensor,
                add_inputs: bool = True) -> None:
    outputs = grouped_lora_product(inputs, lora_b_weights, lora_indices_tensor,
                                   output_tensor.dtype)
    if outputs is None:
        return _reference("bgmv_expand")(inputs, lora_b_weights, output_tensor,
                                         lora_indices_tensor, add_inputs)
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    # The adapter and the model may pad the output differently.
    common = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common] += outputs[:limit, :common]
    else:
        output_tensor[:, :common] = outputs[:limit, :common]


def bgmv_expand_slice(inputs: torch.Tensor, lora_b_weights: torch.Tensor,
                      output_tensor: torch.Tensor, lora_indices_tensor: torch.Tensor,
                      slice_offset: int, slice_size: int, add_inputs: bool = True) -> None:
    outputs = grouped_lora_product(inputs, lora_b_weights, lora_indices_tensor,
                                   output_tensor.dtype)
    if outputs is None:
        return _reference("bgmv_expand_slice")(inputs, lora_b_weights, output_tensor,
                                               lora_indices_tensor, slice_offset, slice_size,
                                               add_inputs)
    if add_inputs:
        output_tensor[:, slice_offset: slice_offset + slice_size] += outputs
    else:
        output_tensor[:, slice_offset: slice_offset + slice_size] = outputs


GROUPED = {"bgmv_shrink": bgmv_shrink, "bgmv_expand": bgmv_expand,
           "bgmv_expand_slice": bgmv_expand_slice}
# vLLM's own functions: the fallback where grouping does not pay. Captured before
# install() rebinds their names.
_REFERENCE: dict = {}


def _reference(name: str) -> Callable[..., None]:
    if not _REFERENCE:
        from vllm.lora.ops.torch_ops import lora_ops

        _REFERENCE.update({key: getattr(lora_ops, key) for key in GROUPED})
    return _REFERENCE[name]


def install() -> None:
    """Rebind vLLM's CPU LoRA ops to the grouped ones, where vLLM looks them up.

    `lora_ops`' sgmv_* (prefill) call its module-level bgmv_*; the punica CPU wrapper
    imports the names from the package, at its own import (after this, in an engine
    process), or already did (then its names are rebound too)."""
    import sys

    from vllm.lora.ops import torch_ops
    from vllm.lora.ops.torch_ops import lora_ops

    _reference("bgmv_shrink")  # captures vLLM's functions before their names change
    modules = [lora_ops, torch_ops]
    wrapper = sys.modules.get("vllm.lora.punica_wrapper.punica_cpu")
    if wrapper is not None:
        modules.append(wrapper)
    for module in modules:
        for name, function in GROUPED.items():
            setattr(module, name, function)
