"""NVML telemetry. No GPU exists on these machines, so the GPU path runs against a fake
`pynvml` module that mimics NVML's Python API; the no-GPU path runs for real."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from kernel.gpu import GPUCollector


def _scrape(collector: GPUCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def _fake_nvml(count: int, fail_init: bool = False) -> types.ModuleType:
    fake = types.ModuleType("pynvml")
    fake.NVML_TEMPERATURE_GPU = 0

    def init() -> None:
        if fail_init:
            raise OSError("NVML Shared Library Not Found")

    fake.nvmlInit = init
    fake.nvmlDeviceGetCount = lambda: count
    fake.nvmlDeviceGetHandleByIndex = lambda i: i
    fake.nvmlDeviceGetName = lambda h: b"NVIDIA L40S"
    fake.nvmlDeviceGetMemoryInfo = lambda h: SimpleNamespace(used=(h + 1) * 2**30,
                                                             total=48 * 2**30)
    fake.nvmlDeviceGetUtilizationRates = lambda h: SimpleNamespace(gpu=37)
    fake.nvmlDeviceGetTemperature = lambda h, kind: 61
    fake.nvmlDeviceGetPowerUsage = lambda h: 212_500  # milliwatts
    return fake


def test_no_gpu_here_reports_zero_quietly(caplog: pytest.LogCaptureFixture) -> None:
    # Real path: this machine has no NVIDIA driver, so NVML cannot initialise.
    text = _scrape(GPUCollector())
    assert "onlycs_gpu_available 0.0" in text
    assert "onlycs_gpu_memory" not in text
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


def test_driver_missing_reports_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(2, fail_init=True))
    assert "onlycs_gpu_available 0.0" in _scrape(GPUCollector())


def test_two_gpus_are_reported_in_base_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(2))
    text = _scrape(GPUCollector())
    assert "onlycs_gpu_available 1.0" in text
    assert 'onlycs_gpu_memory_used_bytes{gpu="1",name="NVIDIA L40S"} 2.147483648e+09' in text
    assert 'onlycs_gpu_memory_total_bytes{gpu="0",name="NVIDIA L40S"} 5.1539607552e+10' in text
    assert 'onlycs_gpu_utilization_ratio{gpu="0",name="NVIDIA L40S"} 0.37' in text
    assert 'onlycs_gpu_temperature_celsius{gpu="1",name="NVIDIA L40S"} 61.0' in text
    assert 'onlycs_gpu_power_watts{gpu="0",name="NVIDIA L40S"} 212.5' in text
