"""`dtype = "auto"` on the CPU profile: bfloat16 only where the CPU computes it natively."""

from __future__ import annotations

import pytest

from kernel.config import AppConfig
from serving.app import engine_options
from serving.cpu_dtype import cpu_auto_dtype, cpu_flags, native_bf16

EPYC_AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse4_2 avx avx2 fma\n"
EPYC_AVX512 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: avx2 avx512f amx_tile amx_bf16 amx_int8\n"
NEOVERSE_V2 = "processor\t: 0\nFeatures\t: fp asimd sve sve2 i8mm bf16\nCPU implementer\t: 0x41\n"
NEOVERSE_N1 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 crc32 atomics\n"


@pytest.mark.parametrize(("cpuinfo", "dtype"), [
    (EPYC_AVX2, "float32"), (EPYC_AVX512, "bfloat16"), (SAPPHIRE_RAPIDS, "bfloat16"),
    (NEOVERSE_V2, "bfloat16"), (NEOVERSE_N1, "float32"), ("", "float32")])
def test_auto_dtype_follows_the_cpu(cpuinfo: str, dtype: str) -> None:
    assert cpu_auto_dtype(cpuinfo) == dtype


def test_flags_come_from_the_first_cpu_only() -> None:
    assert cpu_flags(EPYC_AVX2 + "\n" + EPYC_AVX512) == {"fpu", "sse4_2", "avx", "avx2", "fma"}


def test_engine_gets_this_machines_dtype_unless_the_config_names_one() -> None:
    config = AppConfig()
    expected = "bfloat16" if native_bf16() else "float32"
    assert engine_options(config, "small", config.tiers["small"])["dtype"] == expected
    pinned = AppConfig.model_validate({"tiers": {"small": {"dtype": "bfloat16"}}})
    assert engine_options(pinned, "small", pinned.tiers["small"])["dtype"] == "bfloat16"
    gpu = AppConfig.model_validate({"profile": "gpu"})
    assert engine_options(gpu, "small", gpu.tiers["small"])["dtype"] == "auto"
