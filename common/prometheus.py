"""A real Prometheus server (Debian's `prometheus` package) for a running stage: the stage's own scrape
configuration and rules, pointed at the producer and consumer running here, on a free port.

The stage declares what to scrape in `deploy/prometheus/prometheus.yml` (the jobs `producer` and
`consumer`, as stage 7's compose stack resolves them) and its rules beside it; this module writes a copy
whose targets are the local addresses and whose rule files are absolute paths, and starts the server.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from .service import free_port

HOW_TO_GET = ("prometheus is not installed: apt-get install prometheus (no root: apt-get download prometheus && "
              "dpkg -x prometheus_*.deb ~/prometheus, then PROMETHEUS=~/prometheus/usr/bin/prometheus)")
CONFIG = Path("deploy") / "prometheus" / "prometheus.yml"


def address(url: str) -> str:
    """The host:port of a service's URL: what a scrape configuration names as its target."""
    return urlsplit(url).netloc


def api(url: str, path: str, **params: Any) -> Any:
    """The `data` of a Prometheus HTTP API answer (`/api/v1/<path>`); ValueError if the server refused the call."""
    response = requests.get(f"{url}/api/v1/{path}", params=params, timeout=30)
    body = response.json()
    if body.get("status") != "success":
        raise ValueError(f"prometheus refused {path} {params}: {body.get('error', response.text[:200])}")
    return body["data"]


class PrometheusMissing(RuntimeError):
    """No prometheus binary here; the message says how to get one."""


def binary() -> str:
    """The server's path: PROMETHEUS, else `prometheus` on PATH; raise PrometheusMissing otherwise."""
    found = os.environ.get("PROMETHEUS") or shutil.which("prometheus")
    if not found or not os.access(found, os.X_OK):
        raise PrometheusMissing(f"PROMETHEUS={found} is not an executable" if found else HOW_TO_GET)
    return found


def local_config(stage_dir: Path, targets: dict[str, str], *, interval: str) -> dict[str, Any]:
    """The stage's scrape configuration with each job's targets replaced by `targets[job]` (host:port)."""
    config = yaml.safe_load((stage_dir / CONFIG).read_text(encoding="utf-8"))
    config.setdefault("global", {}).update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str((stage_dir / CONFIG.parent / name).resolve()) for name in config.get("rule_files", [])]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    missing = sorted(set(targets) - set(jobs))
    if missing:
        raise ValueError(f"{CONFIG} has no scrape job named {', '.join(missing)}")
    for name, address in targets.items():
        jobs[name]["static_configs"] = [{"targets": [address]}]
    config["scrape_configs"] = [job for name, job in jobs.items() if name in targets]
    return config


@dataclass
class Prometheus:
    """One server; start() returns once it is ready, stop() ends it."""

    stage_dir: Path
    targets: dict[str, str]
    data_dir: Path
    interval: str = "1s"
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, ready_seconds: float = 30) -> Prometheus:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(local_config(self.stage_dir, self.targets, interval=self.interval)),
                          encoding="utf-8")
        self.port = self.port or free_port()
        log = (self.data_dir / "prometheus.log").open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [binary(), f"--config.file={config}", f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn", "--web.enable-lifecycle"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        for attempt in Retrying(stop=stop_after_delay(ready_seconds), wait=wait_fixed(0.2), reraise=True,
                                retry=retry_if_exception_type((requests.RequestException, AssertionError))):
            with attempt:
                assert self.process.poll() is None, f"prometheus exited: {self.log_tail()}"
                assert requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200, "not ready"
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        path = self.data_dir / "prometheus.log"
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _api(self, path: str, **params: Any) -> Any:
        return api(self.url, path, **params)

    def query(self, expr: str, **params: Any) -> list[dict[str, Any]]:
        """An instant query's result (a list of series with their value); `time=` asks for another moment."""
        return self._api("query", query=expr, **params)["result"]

    def series_names(self) -> set[str]:
        """Every metric name the server holds."""
        return set(self._api("label/__name__/values"))

    def last_scrapes(self) -> dict[str, float]:
        """Each scrape job, and when its last successful scrape was (0: none yet)."""
        return {target["labels"]["job"]: _seconds(target["lastScrape"]) if target["health"] == "up" else 0.0
                for target in self._api("targets")["activeTargets"]}

    def wait_scraped(self, *, after: float = 0.0, seconds: float = 30) -> None:
        """Wait until every job has been scraped successfully since `after` (a time.time())."""
        for attempt in Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(0.1), reraise=True):
            with attempt:
                scraped = self.last_scrapes()
                assert scraped and min(scraped.values()) > after, f"not every job scraped yet: {scraped}"

    def rule_groups(self) -> list[dict[str, Any]]:
        return self._api("rules")["groups"]

    def evaluated(self, *, after: float, seconds: float = 30) -> None:
        """Wait until every rule group has been evaluated since `after` (a time.time())."""
        for attempt in Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(0.2), reraise=True):
            with attempt:
                stale = [g["name"] for g in self.rule_groups() if _seconds(g.get("lastEvaluation")) < after]
                assert not stale, f"rule groups not evaluated yet: {stale}"


def _seconds(rfc3339: str | None) -> float:
    """Prometheus's RFC 3339 time (nanoseconds, UTC) as a Unix time; 0 for "never"."""
    if not rfc3339 or rfc3339.startswith("0001"):
        return 0.0
    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp() + float(f"0.{fraction or 0}")
