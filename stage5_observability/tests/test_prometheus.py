"""A real Prometheus scrapes the stage and loads its rules: every series a rule or a panel reads exists after traffic,
and every recording rule has data."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from common.prometheus import Prometheus, PrometheusMissing, address, binary

from .telemetry import consumer_metrics, metric_names

RULES = Path("deploy") / "prometheus"
DASHBOARDS = Path("deploy") / "grafana" / "dashboards"


def rule_expressions(folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(recorded name -> expr, alert name -> expr) of every rule file in `folder`."""
    recorded, alerts = {}, {}
    for path in sorted(folder.glob("*.yml")):
        if path.name.endswith(".test.yml") or path.name == "prometheus.yml":
            continue
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                (recorded if "record" in rule else alerts)[rule.get("record") or rule["alert"]] = rule["expr"]
    return recorded, alerts


def panel_expressions(folder: Path) -> dict[str, str]:
    """'dashboard / panel' -> expr of every query of every dashboard JSON in `folder`."""
    found = {}
    for path in sorted(folder.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard.get("panels", []):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found[f"{path.stem} / {panel.get('title')} / {target.get('refId')}"] = target["expr"]
    return found


@pytest.mark.check("S5-AC9")
def test_every_series_the_rules_and_panels_read_exists_in_a_real_prometheus_after_traffic(
        service, alice, create_task, implementation, tmp_path):
    try:
        binary()
    except PrometheusMissing as exc:
        pytest.skip(f"not gradable here: {exc}")
    server = Prometheus(implementation, {"producer": address(service.url),
                                         "consumer": address(consumer_metrics(service))}, tmp_path / "prometheus")
    server.start()
    try:
        api = service.client()
        for round_ in range(3):  # traffic on every route the rules select, one scrape after each round
            started = time.time()
            task = create_task(alice, landed=round_ == 0)
            api.get(f"/api/v1/tasks/{task['id']}", headers=alice.headers)
            api.get("/api/v1/tasks", headers=alice.headers)
            api.get("/readyz")
            server.wait_scraped(after=started)  # so that rate() has a point per round
        server.evaluated(after=time.time())
        recorded, alerts = rule_expressions(implementation / RULES)
        panels = panel_expressions(implementation / DASHBOARDS)
        assert recorded and alerts, f"{RULES}/ holds no recording or no alert rules"
        held = server.series_names()
        wanted = {name: source for source, expr in [*recorded.items(), *alerts.items(), *panels.items()]
                  for name in metric_names(expr)}
        never = {name: source for name, source in wanted.items() if name not in held and name not in recorded}
        assert not never, f"rules or panels read series that are never exported: {never}"
        empty = [name for name in recorded if not server.query(name)]
        assert not empty, f"recording rules without data after traffic: {empty}"
    finally:
        server.stop()


@pytest.mark.check("S5-AC9")
def test_the_committed_dashboard_is_what_its_generator_writes(implementation, tmp_path):
    grafana = implementation / DASHBOARDS.parent
    generators = sorted(grafana.glob("*.py"))
    assert generators, f"{DASHBOARDS.parent}/ holds no dashboard generator"
    copy = tmp_path / "grafana"
    shutil.copytree(grafana, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for generator in generators:
        ran = subprocess.run([sys.executable, generator.name], cwd=copy, capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr
    committed = {p.name: p.read_text(encoding="utf-8") for p in (implementation / DASHBOARDS).glob("*.json")}
    written = {p.name: p.read_text(encoding="utf-8") for p in (copy / "dashboards").glob("*.json")}
    assert committed, "no dashboard JSON is committed"
    stale = sorted(name for name in written if written[name] != committed.get(name))
    assert not stale, f"{DASHBOARDS}: {stale} differ from what the generator writes; run it and commit the result"
