"""The shipped Prometheus config, alert rules and Grafana dashboards are well formed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

MONITORING = (Path(__file__).resolve().parents[2] / "provisioning" / "ansible" / "roles"
              / "monitoring" / "files")


def _promtool(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("promtool") is None:
        pytest.fail("promtool (Debian package `prometheus`) is missing: `make test` installs it")
    return subprocess.run(["promtool", *args], capture_output=True, text=True)


def test_promtool_checks_config_and_rules() -> None:
    config = _promtool("check", "config", str(MONITORING / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    rules = _promtool("check", "rules",
                      str(MONITORING / "prometheus" / "rules" / "onlycs-alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    count = sum(len(g["rules"]) for g in yaml.safe_load(
        (MONITORING / "prometheus" / "rules" / "onlycs-alerts.yml").read_text())["groups"])
    assert count > 0 and f"SUCCESS: {count} rules found" in rules.stdout


def test_dashboards_use_the_provisioned_datasource_and_explain_each_panel() -> None:
    datasources = yaml.safe_load((MONITORING / "grafana" / "provisioning" /
                                  "datasources.yml").read_text())["datasources"]
    uid = datasources[0]["uid"]
    dashboards = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
    assert [p.stem for p in dashboards] == ["onlycs-engine", "onlycs-gpu", "onlycs-knowledge",
                                           "onlycs-lora", "onlycs-routing", "onlycs-traffic"]
    for path in dashboards:
        board = json.loads(path.read_text())
        assert board["uid"] == path.stem
        for panel in board["panels"]:
            assert panel["description"], (path.name, panel["title"])
            assert panel["datasource"]["uid"] == uid
            assert all(t["expr"] and t["datasource"]["uid"] == uid for t in panel["targets"])
