"""deploy/prometheus/ checked by Prometheus' own promtool (Debian's prometheus package, which
`make test` installs when missing): the scrape configuration, the rules, and the rule unit
tests (every rule firing and not firing). And the committed Grafana dashboards are what
deploy/grafana/dashboards.py builds."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"


def promtool(*args: str) -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool not found: `make test` installs Debian's prometheus package")
    done = subprocess.run(
        [tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_scrape_configuration_is_valid():
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")


def test_the_rules_are_valid_and_each_has_a_summary():
    out = promtool("check", "rules", "rules.yml")
    assert "SUCCESS: 7 rules found" in out


def test_every_rule_is_unit_tested_firing_and_quiet():
    tests = (PROMETHEUS / "rules_test.yml").read_text()
    rules = [
        line.split(":", 1)[1].strip()
        for line in (PROMETHEUS / "rules.yml").read_text().splitlines()
        if line.strip().startswith("- alert:")
    ]
    for rule in rules:
        block = tests.count(f"alertname: {rule}\n")
        assert block >= 2, f"{rule}: tested {block} time(s); want firing and quiet"
    assert "SUCCESS" in promtool("test", "rules", "rules_test.yml")


def load_dashboards_module():
    spec = importlib.util.spec_from_file_location("dashboards", GRAFANA / "dashboards.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_the_committed_dashboards_are_what_the_code_builds():
    dashboards = load_dashboards_module()
    rendered = dashboards.rendered()
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert committed.keys() == rendered.keys()
    for name, text in rendered.items():
        assert committed[name] == text, f"{name} is stale: run python deploy/grafana/dashboards.py"
