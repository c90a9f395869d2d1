from __future__ import annotations

import stat
from pathlib import Path

from kernel.keys import KeyStore
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
