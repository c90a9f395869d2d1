"""torch.distributed's groups of one share one gloo device (serving/gloo_device.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, sys
    import torch, torch.distributed as dist
    if sys.argv[1] == "shared":
        from serving import gloo_device
        gloo_device.install()
        gloo_device.install()  # a second load of the plugin changes nothing
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{sys.argv[2]}", rank=0,
                            world_size=1)
    groups = [dist.new_group([0], backend="gloo") for _ in range(12)]
    names = [open(f"/proc/self/task/{t}/comm").read().strip()
             for t in os.listdir("/proc/self/task")]
    tensor = torch.ones(3)
    dist.all_reduce(tensor, group=groups[4])
    dist.barrier(groups[7])
    print(names.count("gloo_tcp_loop"), tensor.tolist())
""")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(_free_port())],
                          capture_output=True, text=True, timeout=120,
                          env=os.environ | {"PYTHONPATH": os.getcwd()})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split("\n")[-2]


def test_groups_of_one_share_a_device_and_still_work() -> None:
    assert _run("torch") == "13 [1.0, 1.0, 1.0]"  # torch's own: a device (and thread) each
    assert _run("shared") == "1 [1.0, 1.0, 1.0]"
