"""Which weight dtype `auto` means on the CPU profile.

Left to vLLM, `auto` takes the model's own dtype (bfloat16 for the bundled model). On an
x86 CPU without AVX-512 BF16 or AMX, torch has no fast bfloat16 matmul: on an AVX2-only
EPYC, `perf/dtype_suite.py` measured one decode-sized product 16x slower than in float32
and vLLM serving 3.8x fewer tokens at 8 concurrent. So `auto` means
bfloat16 only where the CPU computes it natively, float32 elsewhere."""

from __future__ import annotations

from pathlib import Path

# x86: AVX-512 BF16 or AMX tiles; Arm: the BF16 extension (ARMv8.6).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str) -> set[str]:
    """Feature flags of the first CPU (`flags` on x86, `Features` on Arm)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def native_bf16(cpuinfo: str | None = None) -> bool:
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError:
            return False
    return bool(cpu_flags(cpuinfo) & NATIVE_BF16_FLAGS)


def cpu_auto_dtype(cpuinfo: str | None = None) -> str:
    return "bfloat16" if native_bf16(cpuinfo) else "float32"
