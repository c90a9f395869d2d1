"""A vLLM general plugin (entry point `vllm.general_plugins`): how a waiting engine
process waits.

vLLM's CPU backend runs the scheduler (EngineCore) and the model (Worker) in two
processes that hand work over through shared memory. A reader that is waiting busy-loops
on `sched_yield()` for a second after its last read, so under steady load the scheduler
burns a whole core while the worker computes. On a small CPU box that core is the one
the appliance's HTTP proxy, router and Ray streaming need. With `ONLYCS_ENGINE_WAIT_S`
set, each turn of that loop sleeps that long instead of yielding: the hand-over costs
at most that much more latency and the core is free. Unset (bare vLLM anywhere else in
this venv), nothing changes.

With `ONLYCS_GROUPED_LORA=1`, the worker's CPU LoRA ops are the grouped ones of
serving/lora_cpu.py. With `ONLYCS_SHARED_GLOO=1`, torch.distributed's groups of one share
one gloo device (serving/gloo_device.py).

vLLM loads general plugins in every engine process (EngineCore and workers), which is why
this is a plugin rather than code in the replica.
"""

from __future__ import annotations

import os
import time

ENV = "ONLYCS_ENGINE_WAIT_S"
GROUPED_LORA_ENV = "ONLYCS_GROUPED_LORA"
SHARED_GLOO_ENV = "ONLYCS_SHARED_GLOO"


def register() -> None:
    if os.environ.get(SHARED_GLOO_ENV) == "1":
        from serving import gloo_device

        gloo_device.install()
    if os.environ.get(GROUPED_LORA_ENV) == "1":
        from serving import lora_cpu

        lora_cpu.install()
    value = os.environ.get(ENV)
    if not value:
        return
    pause_s = float(value)
    from vllm.distributed.device_communicators import shm_broadcast

    def pause() -> None:
        time.sleep(pause_s)

    # The module calls its own imported name, in the reader's wait and the writer's
    # wait for a free slot; loading the plugin twice just rebinds it.
    shm_broadcast.sched_yield = pause
