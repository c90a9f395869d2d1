"""Every role's molecule scenarios: `molecule test` (syntax, prepare, converge, idempotence,
verify) with molecule's default driver on localhost, where localhost is a freshly booted
throwaway host (systemd-nspawn on an overlay of this machine's `/`, see nspawn.py): the
scenarios change the host they run on (users, firewall, services), so never this one.

The repository and the bundle are mounted read-only in the guest at their own paths, so
molecule runs from this checkout's venv and finds `.config/molecule/config.yml`."""

from __future__ import annotations

import re
import shlex
import sys
import time
from pathlib import Path

import pytest

from tests.provisioning.nspawn import booted_guest

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "provisioning" / "ansible" / "roles"
SCENARIOS = sorted(f"{path.parts[-4]}/{path.parts[-2]}"
                   for path in ROLES.glob("*/molecule/*/molecule.yml"))
ALL_ROLES = sorted(path.name for path in ROLES.iterdir() if (path / "tasks").is_dir())


def test_every_role_has_a_scenario_and_one_runs_the_arm64_branch() -> None:
    assert sorted({s.split("/")[0] for s in SCENARIOS}) == ALL_ROLES
    assert "nvidia/arm64" in SCENARIOS


def _recap(log: str) -> dict[str, str]:
    """`scenario > action: Executed: Result` lines of molecule's DETAILS block."""
    details = log.rsplit("DETAILS", 1)[-1]
    return dict(re.findall(r"^\S+ > (\w+): Executed: (\w+)", details, flags=re.M))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_converges_idempotently_and_verifies(scenario: str, bundle: Path,
                                                      tmp_path: Path) -> None:
    role, name = scenario.split("/")
    venv_bin = Path(sys.executable).parent
    mounts = {REPO, bundle.parent}
    if not Path(sys.prefix).is_relative_to(REPO):
        mounts.add(Path(sys.prefix))
    command = " ".join([
        f"cd {shlex.quote(str(ROLES / role))} &&",
        f"PATH={shlex.quote(str(venv_bin))}:$PATH",
        f"ONLYCS_BUNDLE={shlex.quote(str(bundle))}",
        "ANSIBLE_NOCOLOR=1 NO_COLOR=1 ANSIBLE_FORCE_COLOR=0",
        f"molecule test -s {shlex.quote(name)} 2>&1"])
    started = time.monotonic()
    with booted_guest("onlycs-mol", read_only=tuple(sorted(mounts))) as guest:
        result = guest.ssh(command, timeout=1800)
    log = result.stdout + result.stderr
    (tmp_path / "molecule.log").write_text(log)
    print(f"molecule test {scenario}: {time.monotonic() - started:.0f} s")
    actions = _recap(log)
    assert result.returncode == 0, log[-6000:]
    assert actions.get("converge") == "Successful", log[-6000:]
    assert actions.get("idempotence") == "Successful", log[-6000:]
    assert actions.get("verify") == "Successful", log[-6000:]
