"""Start a real appliance (Ray Serve + two vLLM CPU engines) for a benchmark, and stop it."""

from __future__ import annotations

import contextlib
import copy
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from kernel.processes import managed_process, wait_until

REPO = Path(__file__).resolve().parents[1]
BASE: dict[str, Any] = {
    "limits": {"max_pending_per_tier": 4096},
    "store": {"enabled": False},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def merge(base: dict, extra: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def to_toml(data: dict, prefix: str = "") -> str:
    scalars = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    out = ([f"[{prefix}]"] if prefix and scalars else []) + scalars
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(to_toml(value, f"{prefix}.{key}" if prefix else key))
    return "\n".join(out)


def process_tree(pid: int) -> list[psutil.Process]:
    """The appliance and every process it started (Ray, replicas, engine cores)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@contextlib.contextmanager
def appliance(overrides: dict | None = None) -> Iterator[tuple[str, Path, int]]:
    """(base URL, work folder, pid) of a running appliance on loopback, auth off."""
    work = Path(tempfile.mkdtemp(prefix="onlycs-perf-"))
    port = free_port()
    settings = merge(BASE, {"server": {"port": port},
                             "models": {"root": str(REPO / "var" / "models")},
                             "lora": {"root": str(work / "adapters")}})
    config = work / "config.toml"
    config.write_text(to_toml(merge(settings, overrides or {})) + "\n")
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        return httpx.get(f"{url}/readyz", timeout=10).status_code == 200

    # SIGTERM to the launcher alone: it drains and stops Ray's whole tree itself.
    with managed_process([sys.executable, "-m", "appliance.cli", "serve", "--config",
                          str(config)], log_path=work / "serve.log", cwd=work,
                         signal_to="process", stop_timeout_s=180) as process:
        wait_until(ready, timeout_s=900, interval_s=2, ignore=(httpx.HTTPError,),
                   alive=process, what=f"appliance ready (see {work / 'serve.log'})")
        yield url, work, process.pid


def process_kind(proc: psutil.Process) -> str:
    """What a process of the appliance is, for a memory table: Ray's name for its actors,
    vLLM's for its engines, the executable otherwise."""
    name = proc.name()
    if name.startswith("ray::"):
        # Ray renames a worker after the method it runs ("...:small.handle_request"): the
        # actor is the kind, so idle and peak samples name it alike.
        return name.split(".", 1)[0]
    if name.startswith("VLLM::"):
        return name
    for part in proc.cmdline()[1:4]:
        if part.endswith(".py") or part.startswith("appliance"):
            return f"{name} {Path(part).name}"
    return name


def memory_by_kind(pid: int) -> dict[str, dict[str, float]]:
    """RSS and PSS (MiB) of the appliance's processes, summed by kind, with a `total` row.
    RSS counts a shared library once per process that maps it; PSS shares it out."""
    kinds: dict[str, dict[str, float]] = {}
    for proc in process_tree(pid):
        try:
            info = proc.memory_full_info()
            kind = process_kind(proc)
        except psutil.Error:  # a process that just exited
            continue
        row = kinds.setdefault(kind, {"processes": 0, "rss_mib": 0.0, "pss_mib": 0.0})
        row["processes"] += 1
        row["rss_mib"] += info.rss / 2**20
        row["pss_mib"] += info.pss / 2**20
    total = {key: sum(row[key] for row in kinds.values())
             for key in ("processes", "rss_mib", "pss_mib")}
    return {kind: {k: round(v, 1) for k, v in row.items()}
            for kind, row in sorted(kinds.items())} | {"total": total}
