"""The appliance on a real two-node Ray cluster, provisioned by `site.yml` with a cluster
inventory: a head (the API, the Ray head, PostgreSQL, Prometheus) and a worker, each a
freshly booted systemd host (systemd-nspawn, see nspawn.py) on one bridged network with
this machine, which is the Ansible controller and a host the inventory does not name.

The small tier runs a replica on each node, the large tier (an engine of its own here, not
the shipped share of small's) stays on the head; the worker is
stopped and started again under traffic. Runs in the installer's pytest session (after the
main suite), each guest released before the next module boots its own."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.processes import wait_until
from tests.engine_settings import EAGER_LARGE_TIER
from tests.provisioning.nspawn import Guest, booted_guest, bridged_network, ssh_options
from tests.provisioning.site_run import run_playbook
from tests.provisioning.test_site import _recap, unpacked  # noqa: F401 (a fixture)

HOST_IP, HEAD_IP, WORKER_IP = "10.231.8.1", "10.231.8.2", "10.231.8.3"
NETWORK = "10.231.8.0/24"
HEAD, WORKER = "onlycs-head", "onlycs-wrk"  # machine names (nspawn), not host names
SECRET = "my card 6222020200998877665, deliver to 5 Elm Street"
CLUSTER_TIERS = EAGER_LARGE_TIER + """
[tiers.small]
num_replicas = 2
max_replicas_per_node = 1
[tiers.small.engine_args]
enforce_eager = true
[tiers.large]
share_engine_with = ""
resources = {onlycs_head = 0.01}
"""


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[Guest, Guest]]:
    with bridged_network(HOST_IP) as bridge, \
            booted_guest(HEAD, ip=HEAD_IP, bridge=bridge) as head, \
            booted_guest(WORKER, ip=WORKER_IP, bridge=bridge) as worker:
        yield head, worker


def _inventory(head: Guest, worker: Guest, path: Path) -> Path:
    def host(guest: Guest) -> dict:
        return {"ansible_host": guest.ip,
                "ansible_ssh_common_args": " ".join(ssh_options(guest.key))}

    path.write_text(json.dumps({"all": {
        "children": {"appliance": {"hosts": {"head": host(head)}},
                     "ray_workers": {"hosts": {"worker": host(worker)}},
                     "monitoring": {"hosts": {"head": {}}}},
        "vars": {"ansible_user": "root", "ansible_python_interpreter": "/usr/bin/python3"}}}))
    return path


def _vars(bundle: Path) -> dict:
    return {"app_bundle": str(bundle), "app_server_host": "0.0.0.0",
            "app_ray_address": f"{HEAD_IP}:6379", "ray_head_host": HEAD_IP,
            "app_store_backend": "postgresql",
            "nvidia_gpu_present": False, "base_apt_update_cache": False,
            "monitoring_apt_update_cache": False, "monitoring_node_exporter": False,
            # Ray's ports: the role's default, the inventory's two addresses and no more.
            "base_firewall_networks_api": [NETWORK], "base_firewall_networks_metrics": [NETWORK],
            "base_firewall_networks_ssh": [NETWORK],
            "tls_server_ips": [HEAD_IP, "127.0.0.1"], "app_extra_config": CLUSTER_TIERS}


def _site(nodes: tuple[Guest, Guest], bundle: Path, unpacked: Path, work: Path  # noqa: F811
          ) -> tuple[int, str]:
    return run_playbook(unpacked / "provisioning" / "ansible",
                        _inventory(*nodes, work / "hosts.json"), _vars(bundle), work,
                        work / "ansible.log")


@pytest.fixture(scope="module")
def first_run(nodes: tuple[Guest, Guest], bundle: Path, unpacked: Path,  # noqa: F811
              tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, float]:
    started = time.monotonic()
    code, out = _site(nodes, bundle, unpacked, tmp_path_factory.mktemp("cluster1"))
    return code, out, time.monotonic() - started


@pytest.fixture(scope="module")
def tls(nodes: tuple[Guest, Guest]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(nodes[0].root / "etc/onlycs/tls/ca.pem"))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


@pytest.fixture(scope="module")
def admin_key(nodes: tuple[Guest, Guest], first_run: tuple[int, str, float]) -> str:
    assert first_run[0] == 0, first_run[1][-4000:]
    return (nodes[0].root / "etc/onlycs/admin.key").read_text().split()[-1]


def _get(path: str, tls: ssl.SSLContext, key: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"https://{HEAD_IP}:8000{path}")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, context=tls, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


def _post(path: str, payload: dict, tls: ssl.SSLContext, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"https://{HEAD_IP}:8000{path}", data=json.dumps(payload).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=tls, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


def _chat(tls: ssl.SSLContext, key: str, session: str, text: str = "Hello there",
          model: str = "small") -> tuple[int, str | None, dict]:
    """(status, node that answered, body); a request that takes over 120 s fails the test:
    none may hang."""
    body = json.dumps({"model": model, "max_tokens": 6,
                       "messages": [{"role": "user", "content": text}]}).encode()
    request = urllib.request.Request(
        f"https://{HEAD_IP}:8000/v1/chat/completions", data=body, method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                 "x-session-id": session})
    try:
        with urllib.request.urlopen(request, context=tls, timeout=120) as response:
            return response.status, response.headers.get("x-onlycs-node"), \
                json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, None, json.loads(refused.read() or b"{}")


def _readiness(tls: ssl.SSLContext, key: str) -> tuple[str, dict]:
    status, body = _get("/readyz", tls, key)
    return body.get("status", str(status)), body.get("tiers", {})


def _ray_nodes(head: Guest) -> int:
    done = head.ssh(f"set -a; . /etc/onlycs/ray.env; /opt/onlycs/venv/bin/ray status "
                    f"--address {HEAD_IP}:6379")
    return done.stdout.count(" node_")


@pytest.fixture(scope="module")
def serving(nodes: tuple[Guest, Guest], first_run: tuple[int, str, float],
            tls: ssl.SSLContext, admin_key: str) -> None:
    head, _ = nodes
    try:
        wait_until(lambda: _readiness(tls, admin_key)[0] == "ready", timeout_s=1200,
                   interval_s=10, ignore=(OSError,), what="the cluster appliance ready")
    except TimeoutError:
        pytest.fail(f"{_readiness(tls, admin_key)}\n"
                    + head.ssh("journalctl -u onlycs --no-pager | tail -40").stdout)


def test_site_provisions_a_head_and_a_worker_into_one_ray_cluster(
        nodes: tuple[Guest, Guest], first_run: tuple[int, str, float]) -> None:
    code, out, elapsed = first_run
    assert code == 0, out[-4000:]
    print(f"first run of site.yml on two nodes: {elapsed:.0f} s")
    head, worker = nodes
    assert head.ssh("systemctl is-active onlycs-ray-head").stdout.strip() == "active"
    assert worker.ssh("systemctl is-active onlycs-ray-worker").stdout.strip() == "active"
    wait_until(lambda: _ray_nodes(head) == 2, timeout_s=120, interval_s=5,
               what="two live Ray nodes")


def test_replicas_on_both_nodes_answer_through_the_heads_tls_endpoint(
        serving: None, tls: ssl.SSLContext, admin_key: str) -> None:
    _, tiers = _readiness(tls, admin_key)
    assert tiers["small"]["replicas"] == {"running": 2, "target": 2}, tiers
    answered = [_chat(tls, admin_key, f"spread-{i}-{uuid.uuid4().hex[:6]}")
                for i in range(24)]
    assert all(status == 200 for status, _, _ in answered), answered
    assert {node for _, node, _ in answered} == {HEAD_IP, WORKER_IP}
    with socket.create_connection((HEAD_IP, 8000), timeout=10) as raw, \
            tls.wrap_socket(raw, server_hostname=HEAD_IP) as conn:
        assert conn.version() == "TLSv1.3"


def test_an_adapter_loaded_once_is_served_by_the_replicas_on_both_nodes(
        nodes: tuple[Guest, Guest], serving: None, tls: ssl.SSLContext,
        admin_key: str) -> None:
    head, worker = nodes
    trained = head.ssh("runuser -u onlycs -- /opt/onlycs/venv/bin/onlycs lora train --out "
                       "/var/lib/onlycs/adapters/kb-a --epochs 1 --rank 8 "
                       "--config /etc/onlycs/config.toml", timeout=1200)
    assert trained.returncode == 0, trained.stderr[-3000:]
    # An adapter's folder must be at the same path on every node (the README says so).
    shutil.copytree(head.root / "var/lib/onlycs/adapters/kb-a",
                    worker.root / "var/lib/onlycs/adapters/kb-a")
    assert worker.ssh("chown -R onlycs:onlycs /var/lib/onlycs/adapters/kb-a").returncode == 0
    status, body = _post("/admin/adapters", {"name": "kb-a", "path": "kb-a"}, tls, admin_key)
    assert status == 200, body
    answered = [_chat(tls, admin_key, f"adapter-{i}-{uuid.uuid4().hex[:6]}",
                      model="small:kb-a") for i in range(24)]
    assert all(status == 200 for status, _, _ in answered), answered
    assert {node for _, node, _ in answered} == {HEAD_IP, WORKER_IP}


def test_every_turn_is_in_postgresql_and_only_as_ciphertext(
        nodes: tuple[Guest, Guest], serving: None, tls: ssl.SSLContext,
        admin_key: str) -> None:
    head, _ = nodes
    session = f"pg-{uuid.uuid4().hex[:8]}"
    status, _, _ = _chat(tls, admin_key, session, SECRET)
    assert status == 200
    exported = head.ssh(f"runuser -u onlycs -- /opt/onlycs/venv/bin/onlycs conversations "
                        f"export --session {session} --config /etc/onlycs/config.toml")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["messages"][0]["content"] == SECRET
    assert head.ssh("runuser -u postgres -- psql -c CHECKPOINT").returncode == 0
    dump = head.ssh("runuser -u postgres -- pg_dump onlycs")
    assert dump.returncode == 0 and "appliance_state" in dump.stdout
    data = b"".join(p.read_bytes() for p in (head.root / "var/lib/postgresql").rglob("*")
                    if p.is_file())
    for plain in ("6222020200998877665", "5 Elm Street"):
        assert plain not in dump.stdout and plain.encode().hex() not in dump.stdout
        assert plain.encode() not in data


def test_nothing_of_serves_listens_on_the_worker_and_ray_refuses_strangers(
        nodes: tuple[Guest, Guest], serving: None) -> None:
    head, worker = nodes
    listening = worker.ssh("ss -Hltn").stdout
    assert ":8000 " not in listening, listening
    assert worker.ssh("pgrep -f ProxyActor").returncode == 1  # no Serve proxy there
    # The worker, in the inventory, reaches the head's Ray port; this machine, on the same
    # network but not in the inventory, does not.
    reach = f"timeout 5 bash -c '</dev/tcp/{HEAD_IP}/6379' && echo open"
    assert worker.ssh(reach).stdout.strip() == "open"
    with pytest.raises(OSError), socket.create_connection((HEAD_IP, 6379), timeout=5):
        pass
    # And a stranger let through the firewall still needs the cluster's certificate.
    plain = head.ssh(f"timeout 20 env -u RAY_USE_TLS /opt/onlycs/venv/bin/python -c "
                     f"\"import ray; ray.init(address='{HEAD_IP}:6379'); print('JOINED')\"")
    assert "JOINED" not in plain.stdout


def _seen_from_the_host(guest: Guest, command: str) -> str:
    """A command in the guest's namespaces through nsenter: works when its sshd does not."""
    done = subprocess.run(["nsenter", "-t", str(guest.leader), "-a", "sh", "-c", command],
                          capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def _start_worker(worker: Guest) -> None:
    started = time.monotonic()
    try:
        done = worker.ssh("systemctl start onlycs-ray-worker", timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("systemctl start onlycs-ray-worker: no answer in 300 s\n" +
                    _seen_from_the_host(worker, "systemctl list-jobs --no-pager; systemctl "
                                        "status onlycs-ray-worker --no-pager -n 60; uptime; "
                                        "free -m; ps -eo pid,stat,etime,comm | tail -40"))
    assert done.returncode == 0, done.stderr
    print(f"the worker's Ray started again in {time.monotonic() - started:.1f} s")


def test_the_head_serves_alone_while_the_worker_is_down_then_both_again(
        nodes: tuple[Guest, Guest], serving: None, tls: ssl.SSLContext,
        admin_key: str) -> None:
    _, worker = nodes
    assert worker.ssh("systemctl stop onlycs-ray-worker").returncode == 0
    started = time.monotonic()
    outcomes = []  # each answered or refused within _chat's timeout: none hangs
    while time.monotonic() - started < 300:
        outcomes.append(_chat(tls, admin_key, f"down-{uuid.uuid4().hex[:6]}")[:2])
        if _readiness(tls, admin_key)[0] == "degraded":
            break
    assert _readiness(tls, admin_key)[0] == "degraded", outcomes
    after = [_chat(tls, admin_key, f"alone-{i}-{uuid.uuid4().hex[:6]}")[:2]
             for i in range(8)]
    assert after == [(200, HEAD_IP)] * 8, (outcomes, after)
    assert _chat(tls, admin_key, "complaint", "This is unacceptable, my lamp arrived "
                 "broken!", model="auto")[0] == 200  # the large tier stays on the head
    _start_worker(worker)
    wait_until(lambda: _readiness(tls, admin_key)[0] == "ready", timeout_s=600,
               interval_s=10, what="the worker's replica back")
    again = [_chat(tls, admin_key, f"back-{i}-{uuid.uuid4().hex[:6]}") for i in range(24)]
    assert all(status == 200 for status, _, _ in again)
    assert {node for _, node, _ in again} == {HEAD_IP, WORKER_IP}


def test_a_second_run_changes_nothing_on_either_node(
        nodes: tuple[Guest, Guest], bundle: Path, unpacked: Path,  # noqa: F811
        first_run: tuple[int, str, float], tmp_path: Path) -> None:
    assert first_run[0] == 0
    code, out = _site(nodes, bundle, unpacked, tmp_path)
    assert code == 0, out[-4000:]
    for host in ("head", "worker"):
        recap = _recap(out, host)
        assert recap["changed"] == 0 and recap["failed"] == 0, out[-6000:]
