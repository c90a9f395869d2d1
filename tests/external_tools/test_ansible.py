"""The Ansible installer: syntax, ansible-lint's production profile (offline), the firewall
rules nft accepts, and the NVIDIA role's architecture mapping, run by real ansible-playbook
on this box (check mode where a run would change the host)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ANSIBLE = Path(__file__).resolve().parents[2] / "provisioning" / "ansible"
BIN = Path(sys.executable).parent


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path = ANSIBLE
         ) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=600,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1", **(env or {})})


def _playbook(tmp_path: Path, text: str, *extra: str) -> dict:
    book = tmp_path / "play.yml"
    book.write_text(text)
    result = _run("ansible-playbook", "-i", "localhost,", str(book), *extra,
                  env={"ANSIBLE_STDOUT_CALLBACK": "json",
                       "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"),
                       # The managed host is this box: run modules with this venv's Python.
                       "ANSIBLE_PYTHON_INTERPRETER": sys.executable})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout)


def _task_results(report: dict, name: str) -> dict:
    for play in report["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ")[-1] == name:
                return task["hosts"]["localhost"]
    raise AssertionError(f"task {name!r} did not run")


@pytest.mark.parametrize("inventory", ["single", "cluster"])
def test_site_syntax_check(inventory: str) -> None:
    result = _run("ansible-playbook", "--syntax-check", "-i", f"inventory/{inventory}",
                  "site.yml")
    assert result.returncode == 0, result.stderr


def test_ansible_lint_production_profile_offline() -> None:
    result = _run("ansible-lint", "--offline", "--profile", "production", "--nocolor")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def _firewall_play(out: Path) -> str:
    return f"""
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files: ["{ANSIBLE}/roles/base/defaults/main.yml"]
  tasks:
    - name: Render
      ansible.builtin.template:
        src: "{ANSIBLE}/roles/base/templates/nftables.conf.j2"
        dest: "{out}"
        mode: "0644"
        validate: nft -c -f %s
"""


@pytest.mark.skipif(shutil.which("nft") is None, reason="Debian's nftables provides nft")
def test_firewall_rules_open_only_configured_ports_and_nft_accepts_them(tmp_path: Path
                                                                        ) -> None:
    out = tmp_path / "nftables.conf"
    _playbook(tmp_path, _firewall_play(out), "-e",
              json.dumps({"base_firewall_networks_api": ["10.0.0.0/8", "192.168.1.0/24"]}))
    rules = out.read_text()
    assert "policy drop" in rules
    assert 'ip saddr { 10.0.0.0/8, 192.168.1.0/24 } tcp dport { 8000 } accept' in rules
    defaults = yaml.safe_load((ANSIBLE / "roles/base/defaults/main.yml").read_text())
    defaults["base_firewall_networks_api"] = ["10.0.0.0/8", "192.168.1.0/24"]
    groups = [name.removeprefix("base_firewall_ports_") for name, ports in defaults.items()
              if name.startswith("base_firewall_ports_") and ports]
    open_groups = [g for g in groups if defaults.get(f"base_firewall_networks_{g}")]
    assert open_groups  # ssh, api, metrics, ray: one accept rule each, nothing else
    assert sorted(re.findall(r'accept comment "(\w+)"', rules)) == sorted(open_groups)
    bad = tmp_path / "bad.conf"
    bad.write_text(rules.replace("10.0.0.0/8", "10.0.0.0/33"))
    assert subprocess.run(["nft", "-c", "-f", str(bad)], capture_output=True).returncode != 0


@pytest.mark.skipif(shutil.which("nft") is None, reason="Debian's nftables provides nft")
def test_rays_ports_open_only_to_the_clusters_own_nodes(tmp_path: Path) -> None:
    """The cluster inventory's head and two workers, each by its own address: a host of
    their subnet that is not in the inventory matches no accept rule."""
    out = tmp_path / "nftables.conf"
    book = tmp_path / "play.yml"
    book.write_text(_firewall_play(out))
    result = _run("ansible-playbook", "-i", "inventory/cluster", str(book),
                  env={"ANSIBLE_PYTHON_INTERPRETER": sys.executable})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [ray] = [line for line in out.read_text().splitlines() if 'comment "ray"' in line]
    assert "ip saddr { 127.0.0.0/8, 192.0.2.10/32, 192.0.2.11/32, 192.0.2.12/32 }" in ray
    assert "/24" not in ray


NVIDIA_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: true
  roles:
    - role: nvidia
  post_tasks:
    - name: Show the decision
      ansible.builtin.debug:
        msg: >-
          {{ nvidia_needed }} {{ nvidia_repo_arch }} {{ nvidia_repo_distro }}
          {{ nvidia_repo_url }}
"""


@pytest.mark.parametrize(("arch", "folder"), [("x86_64", "x86_64"), ("aarch64", "sbsa")])
def test_nvidia_role_maps_the_architecture_to_the_vendor_repository(
        tmp_path: Path, arch: str, folder: str) -> None:
    # Check mode: this box has no GPU, and the host's apt sources must not change.
    report = _playbook(tmp_path, NVIDIA_PLAY, "--check", "-e", json.dumps(
        {"nvidia_arch": arch, "nvidia_install": False, "nvidia_gpu_present": True}))
    needed, repo_arch, distro, url = _task_results(report, "Show the decision")["msg"].split()
    assert (needed, repo_arch) == ("True", folder)
    assert distro.startswith(("debian", "ubuntu", "rhel"))
    assert url.endswith(f"/{distro}/{folder}/")
    assert _task_results(report, "Write the repository definition (Debian family)")["changed"]


def test_nvidia_role_does_nothing_without_a_gpu(tmp_path: Path) -> None:
    report = _playbook(tmp_path, NVIDIA_PLAY, "--check", "-e",
                       json.dumps({"nvidia_gpu_present": False}))
    assert _task_results(report, "Show the decision")["msg"].split()[0] == "False"
    # Check mode writes nothing either way: what shows "nothing" is the write task skipped.
    write = _task_results(report, "Write the repository definition (Debian family)")
    assert write.get("skipped") is True and not write.get("changed")
