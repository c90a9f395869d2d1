"""Run `site.yml` from an unpacked bundle against a guest, as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.engine_settings import EAGER_LARGE_TIER
from tests.provisioning.nspawn import Guest, ssh_options

NETWORK = "10.231.7.0/24"


def inventory(guest: Guest, path: Path) -> Path:
    path.write_text(json.dumps({"all": {
        "children": {"appliance": {"hosts": {"guest": {"ansible_host": guest.ip}}},
                     "ray_workers": {"hosts": {}},
                     "monitoring": {"hosts": {"guest": {}}}},
        "vars": {"ansible_user": "root",
                 "ansible_ssh_common_args": " ".join(ssh_options(guest.key)),
                 "ansible_python_interpreter": "/usr/bin/python3"}}}))
    return path


def site_vars(guest: Guest, bundle: Path) -> dict:
    return {"app_bundle": str(bundle), "app_server_host": "0.0.0.0",
            "nvidia_gpu_present": False,      # no GPU here: the role must skip cleanly
            "base_apt_update_cache": False,   # the guest has no package mirror
            "monitoring_apt_update_cache": False,
            "monitoring_node_exporter": False,  # not on this machine, so not in the guest
            "base_firewall_networks_api": [NETWORK], "base_firewall_networks_metrics": [NETWORK],
            "base_firewall_networks_ssh": [NETWORK],
            "tls_server_ips": [guest.ip, "127.0.0.1"],
            "app_extra_config": EAGER_LARGE_TIER}


def run_site(playbooks: Path, guest: Guest, bundle: Path, work: Path,
             log: Path) -> tuple[int, str]:
    return run_playbook(playbooks, inventory(guest, work / "hosts.json"),
                        site_vars(guest, bundle), work, log)


def run_playbook(playbooks: Path, hosts: Path, extra_vars: dict, work: Path,
                 log: Path) -> tuple[int, str]:
    extra = work / "vars.json"
    extra.write_text(json.dumps(extra_vars))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(hosts),
         "-e", f"@{extra}", "site.yml"], cwd=playbooks, capture_output=True, text=True,
        timeout=1800, env={**os.environ, "ANSIBLE_NOCOLOR": "1",
                           "ANSIBLE_HOST_KEY_CHECKING": "False"})
    log.write_text(result.stdout + result.stderr)
    return result.returncode, result.stdout
