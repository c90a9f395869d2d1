"""A throwaway host with a real systemd: `systemd-nspawn --boot` on an overlay of this
machine's `/` (nothing the host has is changed), its own network namespace joined to ours
by a veth pair, and sshd, so Ansible reaches it exactly as it reaches a server."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from kernel.processes import stop_process, wait_until

HOST_IP, GUEST_IP, PREFIX = "10.231.7.1", "10.231.7.2", 24


@dataclass
class Guest:
    name: str
    ip: str
    root: Path          # the guest's file system, seen from the host
    key: Path           # SSH private key that root@ip accepts
    leader: int         # the guest's PID 1, seen from the host

    def ssh(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", *ssh_options(self.key), f"root@{self.ip}", command],
                              capture_output=True, text=True, timeout=timeout)


def ssh_options(key: Path) -> list[str]:
    return ["-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def _wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    wait_until(check, timeout_s=timeout, what=what)


@contextlib.contextmanager
def bridged_network(host_ip: str, name: str = "onlycs-br0") -> Iterator[str]:
    """One L2 network for several guests (a cluster's nodes), this machine at `host_ip`."""
    _run("ip", "link", "add", name, "type", "bridge")
    try:
        _run("ip", "addr", "add", f"{host_ip}/{PREFIX}", "dev", name)
        _run("ip", "link", "set", name, "up")
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


@contextlib.contextmanager
def booted_guest(name: str = "onlycs-e2e", read_only: tuple[Path, ...] = (),
                 ip: str = GUEST_IP, bridge: str | None = None) -> Iterator[Guest]:
    """`read_only`: host folders the guest sees at the same path, unchanged (nspawn mounts
    its own /tmp, which would hide anything of the host's there). `bridge`: join that
    network (`bridged_network`) at `ip` instead of a veth pair of its own to this machine."""
    if len(name) > 12:  # nspawn names the host's veth "ve-NAME" only if that fits IFNAMSIZ
        raise ValueError(f"machine name {name!r} is longer than 12 characters")
    work = Path(tempfile.mkdtemp(prefix="nspawn-", dir="/var/tmp"))
    upper, scratch, root = work / "upper", work / "work", work / "root"
    for folder in (upper, scratch, root):
        folder.mkdir()
    _run("mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir=/,upperdir={upper},workdir={scratch}", str(root))
    process = None
    try:
        (root / "etc" / "machine-id").write_text(uuid.uuid4().hex + "\n")
        key = work / "id_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        ssh_dir = root / "root" / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
        os.chmod(ssh_dir / "authorized_keys", 0o600)
        # Services of the host that the guest does not need at boot.
        wants = root / "etc" / "systemd" / "system" / "multi-user.target.wants"
        for unit in ("postgresql.service", "prometheus.service"):
            (wants / unit).unlink(missing_ok=True)
        log = (work / "boot.log").open("w")
        process = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--link-journal=no",
             f"--machine={name}",
             f"--network-bridge={bridge}" if bridge else "--network-veth",
             "-D", str(root), "--boot",
             "--console=pipe", *(f"--bind-ro={folder}" for folder in read_only)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        leader_box: list[int] = []

        def leader_started() -> bool:
            """The guest's PID 1 (nspawn forks through an intermediate child first), once
            its network namespace has the veth's inner end."""
            if process.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited: {(work / 'boot.log').read_text()}")
            for child in psutil.Process(process.pid).children(recursive=True):
                with contextlib.suppress(OSError, StopIteration):
                    status = Path(f"/proc/{child.pid}/status").read_text().splitlines()
                    nspid = next(line for line in status if line.startswith("NSpid:")).split()
                    if len(nspid) > 2 and nspid[-1] == "1" and subprocess.run(
                            ["nsenter", "-t", str(child.pid), "-n", "ip", "link", "show",
                             "host0"], capture_output=True).returncode == 0:
                        leader_box.append(child.pid)
                        return True
            return False

        _wait_for(leader_started, 30, "the guest's systemd and its network")
        leader = leader_box[0]
        host_if = f"{'vb' if bridge else 've'}-{name}"
        _wait_for(lambda: Path(f"/sys/class/net/{host_if}").exists(), 30, host_if)
        if not bridge:
            _run("ip", "addr", "add", f"{HOST_IP}/{PREFIX}", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        _run("nsenter", "-t", str(leader), "-n", "ip", "addr", "add", f"{ip}/{PREFIX}",
             "dev", "host0")
        _run("nsenter", "-t", str(leader), "-n", "ip", "link", "set", "host0", "up")
        _run("nsenter", "-t", str(leader), "-n", "ip", "link", "set", "lo", "up")
        guest = Guest(name, ip, root, key, leader)
        _wait_for(lambda: guest.ssh("true", timeout=10).returncode == 0, 120, "sshd in the guest")
        yield guest
    finally:
        if process is not None:
            stop_process(process, signal_to="group", timeout_s=60)
        subprocess.run(["umount", "-l", str(root)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
