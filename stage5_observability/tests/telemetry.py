"""What stage 5 documents about its telemetry (design/metrics.md, README), and helpers its checks share.

The series names and labels below are the stage's documented contract: the alert rules and the
dashboard query them, so an implementation must export them under these names.
"""
from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "http_server_request_duration_seconds"
ROUTES = {"/api/v1/users", "/api/v1/auth/login", "/api/v1/tasks", "/api/v1/tasks/<task_id>",
          "/api/v1/tasks/<task_id>/cancel", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs",
          "/docs/<path:path>", "/docs/", "unmatched"}
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of a /metrics page, by (sample name, labels); fails the check on a bad page."""
    response = requests.get(url, timeout=10, headers={"Connection": "close"})
    assert response.status_code == 200, f"GET {url} answered {response.status_code}"
    assert response.headers["Content-Type"].startswith("text/plain"), response.headers["Content-Type"]
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (sample, got), value in samples.items() if sample == name and wanted <= got)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def label_values(samples: Samples, label: str, name: str | None = None) -> set[str]:
    return {value for (sample, labels), _ in samples.items() if name in (None, sample)
            for key, value in labels if key == label}


def producer_metrics(service) -> str:
    return f"{service.url}/metrics"


def consumer_metrics(service) -> str:
    host = service.env.get("CONSUMER_METRICS_HOST", "127.0.0.1")
    return f"http://{host}:{service.env['CONSUMER_METRICS_PORT']}/metrics"


def spans(service) -> Iterator[dict]:
    """The spans the service's processes have written to its TRACE_FILE so far."""
    path = Path(service.env["TRACE_FILE"])
    if not path.is_file():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            yield json.loads(line)
        except ValueError:
            continue


def promtool() -> str:
    """promtool's path, or a NOT GRADABLE skip that says how to get it."""
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("not gradable here: promtool is not installed (apt-get install prometheus; or, without root, "
                    "apt-get download prometheus && dpkg -x prometheus_*.deb ~/prometheus, then put its usr/bin on PATH)")
    return found


# PromQL words that are not metric names: functions are followed by "(", these are not.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
             "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric (and recorded series) names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, regexes)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(r"(?<![\w:])\d[\w.]*", "", text)  # numbers and durations (offset 15m, 1e3, 0.99)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word, rest = match.group(), text[match.end():].lstrip()
        if rest.startswith("(") or word.lower() in _KEYWORDS or re.fullmatch(r"\d.*", word):
            continue
        names.add(word)
    return names
