"""One gloo device for every single-member process group of an engine process.

vLLM sets up torch.distributed in every engine, even one that runs alone (tensor and
pipeline parallel size 1): the world group and a CPU and a device group for each kind of
parallelism, 13 gloo process groups on vLLM's CPU build. torch gives each its own gloo
TCP device, and each device runs a thread that wakes every 10 ms to look for work: 13
threads, 1,300 wake-ups a second in an idle engine (counted per thread in /proc,
2026-12-05). On two cores every wake-up preempts one of the engine's two OpenMP threads
while the other spins at the next barrier (an idle appliance, these threads and Ray's
daemons, cost bare vLLM beside it 9-11 % of its tokens per second). A group of one never
sends anything, so all of them can share one device, and one thread.

`serving/vllm_plugin.py` installs this in the engine processes of the appliance's tiers
(and of the bare vLLM baseline, which gets the tiers' environment). Groups with more than
one member keep a device of their own, as torch makes them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import torch.distributed.distributed_c10d as c10d

_shared: list[Any] = []


def _device() -> Any:
    if not _shared:
        _shared.append(c10d.ProcessGroupGloo.create_default_device())
    return _shared[0]


def install() -> None:
    """Make torch's gloo groups of one share a device from now on in this process."""
    base = c10d.ProcessGroupGloo
    if getattr(base, "onlycs_shared_device", False):
        return

    class SharedDeviceGloo(base):  # type: ignore[misc, valid-type]
        onlycs_shared_device = True

        def __init__(self, store: Any, rank: int, size: int, *args: Any, **kwargs: Any):
            if size != 1 or args or set(kwargs) - {"timeout"}:
                super().__init__(store, rank, size, *args, **kwargs)
                return
            options = base._Options()
            options._devices = [_device()]
            options._threads = 1  # its work threads never get work: one is plenty
            options._timeout = kwargs.get("timeout", timedelta(minutes=30))
            super().__init__(store, rank, size, options)

    c10d.ProcessGroupGloo = SharedDeviceGloo
