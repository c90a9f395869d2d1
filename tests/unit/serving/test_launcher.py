from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from kernel.keys import KeyStore
from kernel.processes import wait_until
from serving.launcher import _admin_key_problems
from tests.unit.serving.pipeline.conftest import make_config


def test_the_first_admin_key_is_made_once_and_only_its_owner_reads_it(tmp_path: Path) -> None:
    config = make_config(tmp_path, security={"auth": "auto"})
    path = config.security.admin_key_file
    assert _admin_key_problems(config) == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    record = KeyStore(config.security.keys_file).verify(path.read_text().strip())
    assert record is not None and record.scope == "admin"
    assert _admin_key_problems(config) == []  # a second start changes nothing
    assert len(KeyStore(config.security.keys_file).list()) == 1


def test_a_stale_admin_key_file_is_named_not_overwritten(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    path = config.security.admin_key_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("ocs-old\n")
    problems = _admin_key_problems(config)
    assert len(problems) == 1 and problems[0].startswith("security.admin_key_file:")
    assert path.read_text() == "ocs-old\n"


CHILD = """
import os, signal, sys, time
out = sys.argv[1]
def on_term(signum, frame):
    with open(out, "a") as fh:
        fh.write(f"SIGTERM pgid={os.getpgid(0)}\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, lambda *_: open(out, "a").write("SIGINT\\n"))
open(out, "a").write("ready\\n")
while True:
    time.sleep(0.05)
"""

SUPERVISOR = """
import sys
from serving.launcher import supervise
sys.exit(supervise([sys.executable, "-c", sys.argv[1], sys.argv[2]]))
"""


def _started(out: Path) -> subprocess.Popen:
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, CHILD, str(out)],
                                  start_new_session=True)
    wait_until(lambda: out.exists() and "ready" in out.read_text(), timeout_s=30,
               interval_s=0.05, what="the supervised child")
    return supervisor


def test_ctrl_c_to_the_group_reaches_the_appliance_only_as_one_drain(tmp_path: Path) -> None:
    out = tmp_path / "signals"
    supervisor = _started(out)
    os.killpg(supervisor.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert supervisor.wait(30) == 0
    lines = out.read_text().splitlines()
    # The child never saw the group's SIGINT (its own session) but got one SIGTERM.
    assert lines[0] == "ready" and len(lines) == 2 and lines[1].startswith("SIGTERM pgid=")
    assert int(lines[1].split("=")[1]) != supervisor.pid


def test_the_appliance_drains_when_its_supervisor_is_killed(tmp_path: Path) -> None:
    out = tmp_path / "signals"
    supervisor = _started(out)
    supervisor.kill()
    supervisor.wait(30)
    wait_until(lambda: "SIGTERM" in out.read_text(), timeout_s=30, interval_s=0.05,
               what="the orphaned child told to stop")


def test_every_node_gets_the_hooks_settings_and_no_worker_runs_a_proxy(tmp_path) -> None:
    """A cluster's raylets were started by their own units: the settings the listeners
    need travel as the job's and the controller's runtime environment instead."""
    from kernel.config import AppConfig
    from serving.launcher import cluster_env, proxy_location

    config = AppConfig.model_validate({"tls": {"enabled": True, "cert_file": "c.pem",
                                               "key_file": "k.pem"},
                                       "security": {"max_body_bytes": 65536}})
    env = cluster_env(config, str(tmp_path))
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)
    assert env["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] == \
        "serving.proxy_hooks.configure_proxy"
    assert env["ONLYCS_TLS_MIN_VERSION"] == "1.3"
    assert env["ONLYCS_MAX_BODY_BYTES"] == "65536"
    assert env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    assert proxy_location(config) == "HeadOnly"
    proxied = AppConfig.model_validate({"server": {"ingress": "proxy"}})
    assert proxy_location(proxied) == "EveryNode"


ORPHANING = """
import subprocess, sys, time
import psutil
from serving.launcher import _adopt_orphans, _kill_leftovers
_adopt_orphans()
me = psutil.Process()
# A daemon that starts a helper and dies before anyone lists it (raylet and its agents).
subprocess.run(["sh", "-c", "sleep 300 & echo $! > " + sys.argv[1]], check=True)
time.sleep(0.3)
_kill_leftovers(me, [])
"""


def test_a_stop_ends_descendants_whose_parent_died_first(tmp_path: Path) -> None:
    pid_file = tmp_path / "orphan.pid"
    subprocess.run([sys.executable, "-c", ORPHANING, str(pid_file)], check=True, timeout=60,
                   cwd=Path(__file__).parents[3])
    orphan = int(pid_file.read_text())
    try:
        wait_until(lambda: not _running(orphan), timeout_s=10, interval_s=0.1,
                   what="the orphan ending")
    finally:
        if _running(orphan):
            os.kill(orphan, signal.SIGKILL)


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_every_lazy_import_of_the_launcher_resolves() -> None:
    # serve_foreground imports Ray-side modules late (they need the env set first): a name
    # moved elsewhere must fail here, not at the first real start.
    import ast
    import importlib

    tree = ast.parse((Path(__file__).parents[3] / "serving" / "launcher.py").read_text())
    lazy = [node for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
            for node in ast.walk(fn) if isinstance(node, ast.ImportFrom)]
    assert lazy, "expected late imports in serving/launcher.py"
    for node in lazy:
        module = importlib.import_module(node.module or "")
        for alias in node.names:
            if not hasattr(module, alias.name):  # a submodule: `from ray import serve`
                importlib.import_module(f"{node.module}.{alias.name}")
