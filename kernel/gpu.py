"""GPU telemetry through NVML (`nvidia-ml-py`), read at scrape time.

On a machine without a GPU or driver the collector reports `onlycs_gpu_available 0`
and nothing else: NVML is probed once, failures are logged once at debug level.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


def _load_nvml() -> Any | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception as exc:  # no package, no driver, no device: all mean "no GPU"
        logger.debug("NVML unavailable: %s", exc)
        return None


class GPUCollector(Collector):
    def __init__(self) -> None:
        self._nvml: Any | None = None
        self._probed = False

    def _gpus(self) -> Any | None:
        if not self._probed:
            self._nvml, self._probed = _load_nvml(), True
        return self._nvml

    def collect(self) -> Iterator[GaugeMetricFamily]:
        nvml = self._gpus()
        available = GaugeMetricFamily(
            "onlycs_gpu_available", "1 when NVML sees at least one GPU, else 0.")
        try:
            count = nvml.nvmlDeviceGetCount() if nvml else 0
        except Exception:
            count = 0
        available.add_metric([], 1 if count else 0)
        yield available
        if count:
            yield from self._per_gpu(nvml, count)

    def _per_gpu(self, nvml: Any, count: int) -> Iterator[GaugeMetricFamily]:
        labels = ["gpu", "name"]
        util = GaugeMetricFamily("onlycs_gpu_utilization_ratio",
                                 "GPU busy fraction over the last sample period.", labels=labels)
        used = GaugeMetricFamily("onlycs_gpu_memory_used_bytes", "GPU memory in use.",
                                 labels=labels)
        total = GaugeMetricFamily("onlycs_gpu_memory_total_bytes", "GPU memory in all.",
                                  labels=labels)
        temp = GaugeMetricFamily("onlycs_gpu_temperature_celsius", "GPU core temperature.",
                                 labels=labels)
        power = GaugeMetricFamily("onlycs_gpu_power_watts", "GPU power draw.", labels=labels)
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = nvml.nvmlDeviceGetName(handle)
                name = name.decode() if isinstance(name, bytes) else str(name)
                key = [str(index), name]
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                util.add_metric(key, nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100)
                used.add_metric(key, memory.used)
                total.add_metric(key, memory.total)
                temp.add_metric(key, nvml.nvmlDeviceGetTemperature(
                    handle, nvml.NVML_TEMPERATURE_GPU))
                power.add_metric(key, nvml.nvmlDeviceGetPowerUsage(handle) / 1000)
            except Exception as exc:  # one failing GPU must not hide the others
                logger.debug("NVML read of GPU %d failed: %s", index, exc)
        yield from (util, used, total, temp, power)
