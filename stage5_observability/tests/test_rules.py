"""promtool: the scrapes pass its metric lint; the stage's rules and scrape configuration parse, and the rules' unit
tests pass and cover every alert."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from .telemetry import consumer_metrics, producer_metrics, promtool

RULES = Path("deploy") / "prometheus"
CONFIG = "prometheus.yml"  # the scrape configuration, which loads the rule files


def lint(promtool_path: str, url: str) -> str:
    page = requests.get(url, timeout=10).text
    checked = subprocess.run([promtool_path, "check", "metrics"], input=page, capture_output=True, text=True,
                             timeout=60)
    return (checked.stdout + checked.stderr).strip() if checked.returncode or checked.stdout.strip() else ""


@pytest.mark.check("S5-AC5")
def test_promtool_finds_nothing_to_report_on_either_scrape(service, alice, create_task):
    found = promtool()
    create_task(alice)
    for url in (producer_metrics(service), consumer_metrics(service)):
        assert lint(found, url) == "", f"promtool check metrics on {url}:\n{lint(found, url)}"


@pytest.mark.check("S5-AC5")
def test_the_rules_check_and_their_tests_pass_and_make_every_alert_fire_once_and_stay_quiet_once(implementation):
    found = promtool()
    folder = implementation / RULES
    rule_files = sorted(p for p in folder.glob("*.yml") if not p.name.endswith(".test.yml") and p.name != CONFIG)
    tests = sorted(folder.glob("*.test.yml"))
    assert rule_files and tests, f"{RULES}/ holds no rule files or no rule tests"
    for command in (["check", "rules", *map(str, rule_files)], ["check", "config", str(folder / CONFIG)]):
        checked = subprocess.run([found, *command], capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    for test in tests:
        ran = subprocess.run([found, "test", "rules", test.name], capture_output=True, text=True, timeout=120,
                             cwd=folder)
        assert ran.returncode == 0, ran.stdout + ran.stderr

    alerts = {rule["alert"] for path in rule_files for group in yaml.safe_load(path.read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}
    assert alerts, "no alert rules"
    fired, quiet = set(), set()
    for test in tests:
        for case in yaml.safe_load(test.read_text()).get("tests", []):
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts <= fired, f"no test makes these alerts fire: {sorted(alerts - fired)}"
    assert alerts <= quiet, f"no test checks these alerts stay quiet: {sorted(alerts - quiet)}"
