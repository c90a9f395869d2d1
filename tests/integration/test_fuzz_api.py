"""Property-based fuzzing of every public endpoint from the served OpenAPI schema.

The fuzzing key has a small tokens-per-minute budget, so generated requests asking
for thousands of tokens are answered by the rate limiter instead of keeping the CPU
engines busy for minutes: that bounds the run's time, not its coverage of inputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Appliance, create_key

pytestmark = pytest.mark.integration

HOOKS = "tests.integration.schemathesis_hooks"


def test_fuzzer_finds_no_server_errors(appliance: Appliance, tmp_path: Path) -> None:
    key = create_key(appliance.config_path, "fuzzer", "--tpm", "400")
    st = Path(sys.executable).with_name("st")
    done = subprocess.run(
        [str(st), "run", f"{appliance.base_url}/openapi.json",
         "--checks", "not_a_server_error,openai_error_shape",
         "--header", f"Authorization: Bearer {key}",
         "--tls-verify", str(appliance.ca_file),
         "--max-examples", "30", "--request-timeout", "120",
         "--generation-deterministic", "--report", "junit",
         "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=1200,
        env=os.environ | {"SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": os.getcwd()})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    report = "".join(p.read_text() for p in tmp_path.glob("junit-*.xml"))
    assert "POST /v1/chat/completions" in report and "POST /v1/completions" in report
