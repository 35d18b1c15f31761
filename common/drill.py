"""Bottleneck drills [定位常见瓶颈]: the stage under steady traffic, scraped by a real Prometheus; one fault for a
while; then the dashboard drawn over that window, and the figures that tell which part is to blame.

`python -m common.drill STAGE SCENARIO [--out DIR]`, SCENARIO one of:
  db-slow      every database statement answers 200 ms late (the harness's proxy; MySQL/MariaDB only)
  broker-down  every broker of the embedded cluster goes away
  broker-slow  the brokers answer 1.5 s late (round-trip time), past nothing's deadline but the SLO's
  penetration  the reads switch from one hot task to 200 random ids that do not exist [缓存穿透]
The PNGs and figures.md go to reports/drills/<scenario>/ (or --out).
"""
from __future__ import annotations

import argparse
import contextlib
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .panels import Window, render
from .prometheus import Prometheus, PrometheusMissing, address
from .stages import REPO_ROOT, built
from .testing.harness import Harness, RunningService

BASELINE, FAULT, RECOVERY = 30.0, 40.0, 20.0  # seconds of each phase
WORKERS, PACE = 4, 0.05  # load threads, and each one's pause between requests (about 60 requests a second)
DB_DELAY_MS, BROKER_RTT_MS = 200, 1500
UNKNOWN_IDS = 200  # per load thread
SCRAPE_SECONDS = 1.0  # the drill's Prometheus scrapes every second: a fault of 40 s is 40 points


@dataclass
class Traffic:
    """Threads that create tasks and read them back until stopped; `unknown_reads` switches reads to random ids."""

    service: RunningService
    headers: dict[str, str]
    unknown_reads: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    answers: dict[int, int] = field(default_factory=dict)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The traffic for the duration of the block."""
        hot = self._create(requests.Session())
        threads = [threading.Thread(target=self._loop, args=(hot,), daemon=True) for _ in range(WORKERS)]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            self.stopping.set()
            for thread in threads:
                thread.join()

    def _create(self, session: requests.Session) -> str | None:
        response = session.post(f"{self.service.url}/api/v1/tasks", headers=self.headers, timeout=15,
                                json={"type": "drill.task", "payload": {"n": random.randrange(10**6)}})
        self.answers[response.status_code] = self.answers.get(response.status_code, 0) + 1
        return response.json().get("id") if response.status_code == 202 else None

    def _loop(self, hot: str | None) -> None:
        session = requests.Session()
        # A scanner's ids: random (version 4) UUIDs, each asked for again and again. (Fresh UUIDv7 ids would
        # also make each read wait for a landing that never comes: design/bottlenecks.md, "A finding".)
        unknown = [uuid.uuid4() for _ in range(UNKNOWN_IDS)]
        while not self.stopping.is_set():
            try:
                if random.random() < 0.25:
                    self._create(session)
                elif random.random() < 0.15:
                    session.get(f"{self.service.url}/api/v1/tasks", headers=self.headers, timeout=15)
                else:
                    task = random.choice(unknown) if self.unknown_reads.is_set() or hot is None else hot
                    session.get(f"{self.service.url}/api/v1/tasks/{task}", headers=self.headers, timeout=15)
                session.get(f"{self.service.url}/readyz", timeout=15)  # as an orchestrator's probe would
            except requests.RequestException:
                pass
            self.stopping.wait(PACE)


# The queries whose figures tell (name, PromQL), the ones that should move first; over 30 s, so that the
# figure at the fault's start is all steady traffic and the one at its end all fault.
Fault = Callable[[Harness, RunningService, Traffic], contextlib.AbstractContextManager[None]]
TELLS: dict[str, list[tuple[str, str]]] = {
    "db-slow": [
        ("statement p99 (s)", "histogram_quantile(0.99, sum by (le) (rate(db_query_duration_seconds_bucket[30s])))"),
        ("GET /api/v1/tasks p99 (s)", 'histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{route="/api/v1/tasks", method="GET"}[30s])))'),
        ("publish errors/s", "sum(rate(broker_publish_errors_total[30s]))"),
        ("consumer lag (messages)", "sum(kafka_consumer_lag_messages)")],
    "broker-down": [
        ("publish errors/s", "sum(rate(broker_publish_errors_total[30s]))"),
        ("broker ready (0/1)", 'min(readiness_status{dependency="broker"})'),
        ("creates refused 503/s", 'sum(rate(tasks_rejected_total{reason="SERVICE_UNAVAILABLE"}[30s]))'),
        ("statement p99 (s)", "histogram_quantile(0.99, sum by (le) (rate(db_query_duration_seconds_bucket[30s])))")],
    "broker-slow": [
        ("publish p99 (s)", 'histogram_quantile(0.99, sum by (le) (rate(broker_publish_duration_seconds_bucket{outcome="acked"}[30s])))'),
        ("POST /api/v1/tasks p99 (s)", 'histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{route="/api/v1/tasks", method="POST"}[30s])))'),
        ("landing delay p99 (s)", "histogram_quantile(0.99, sum by (le) (rate(task_landing_delay_seconds_bucket[30s])))"),
        ("statement p99 (s)", "histogram_quantile(0.99, sum by (le) (rate(db_query_duration_seconds_bucket[30s])))")],
    "penetration": [
        ("Redis misses/s", 'sum(rate(cache_lookups_total{level="redis", result="miss"}[30s]))'),
        ("negative hits/s", 'sum(rate(cache_lookups_total{result="negative_hit"}[30s]))'),
        ("local hit ratio", 'sum(rate(cache_lookups_total{level="local", result=~"hit|negative_hit"}[30s])) / sum(rate(cache_lookups_total{level="local"}[30s]))'),
        ("SELECTs/s", 'sum(rate(db_query_duration_seconds_count{operation="select"}[30s]))')],
}


@contextlib.contextmanager
def apply(scenario: str, harness: Harness, service: RunningService, traffic: Traffic) -> Iterator[None]:
    if scenario == "db-slow":
        proxy = harness.database.proxy
        if proxy is None:
            raise SystemExit("error: db-slow needs a networked database to slow down: set DATABASE_URL to "
                             "MySQL/MariaDB (embedded SQLite is a file)")
        with proxy.slowed(DB_DELAY_MS):
            yield
    elif scenario in ("broker-down", "broker-slow"):
        assert service.broker is not None
        with service.broker.outage() if scenario == "broker-down" else service.broker.slow(BROKER_RTT_MS):
            yield
    else:
        traffic.unknown_reads.set()
        try:
            yield
        finally:
            traffic.unknown_reads.clear()


def figures(server: Prometheus, scenario: str, at: float) -> list[float | None]:
    values = []
    for _, expr in TELLS[scenario]:
        series = server.query(expr, time=at)
        values.append(round(float(series[0]["value"][1]), 4) if series else None)
    return values


def drill(stage_number: int, scenario: str, out: Path) -> int:
    stage = built(stage_number)
    if not (stage.path / "deploy" / "grafana" / "dashboards").is_dir():
        raise LookupError(f"stage {stage.number} has no dashboards to draw; drills start at stage 5")
    with tempfile.TemporaryDirectory(prefix="drill-") as work, contextlib.ExitStack() as stack:
        harness = Harness(impl=None, target=None, work_dir=Path(work))
        stack.callback(harness.close)
        service = harness.launch(stage, name=f"drill-{scenario}")
        stack.callback(service.stop)
        consumer = f"127.0.0.1:{service.env['CONSUMER_METRICS_PORT']}"
        server = Prometheus(stage.path, {"producer": address(service.url), "consumer": consumer},
                            Path(work) / "prometheus", interval=f"{SCRAPE_SECONDS:.0f}s").start()
        stack.callback(server.stop)
        credentials = {"username": f"drill{uuid.uuid4().hex[:12]}", "password": "drill-password-1"}
        requests.post(f"{service.url}/api/v1/users", json=credentials, timeout=15).raise_for_status()
        token = requests.post(f"{service.url}/api/v1/auth/login", json=credentials, timeout=15).json()["access_token"]
        traffic = Traffic(service, {"Authorization": f"Bearer {token}"})
        print(f"drill {scenario}: {BASELINE:.0f} s steady, {FAULT:.0f} s of fault, {RECOVERY:.0f} s recovery", flush=True)
        with traffic.running():
            started = time.time()
            time.sleep(BASELINE)
            fault_start = time.time()
            with apply(scenario, harness, service, traffic):
                time.sleep(FAULT)
            fault_end = time.time()
            time.sleep(RECOVERY)
            server.wait_scraped(after=time.time())
        end = time.time()
        before, during = figures(server, scenario, fault_start), figures(server, scenario, fault_end)
        window = Window(started, end, SCRAPE_SECONDS, (fault_start, fault_end), scenario)
        written = render(stage.path, server.url, window, out)
    lines = [f"# Drill `{scenario}`, stage {stage.number}", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(end))}; answers during the drill: "
             f"{dict(sorted(traffic.answers.items()))} (creates only).", "",
             "| figure | at the fault's start | at its end |", "|---|---|---|"]
    lines += [f"| {name} | {a} | {b} |" for (name, _), a, b in zip(TELLS[scenario], before, during)]
    lines += ["", "Panels (the fault's window shaded): " + ", ".join(f"[{p.name}]({p.name})" for p in written)]
    (out / "figures.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[4:-2]))
    print(f"{len(written)} PNGs and figures.md in {out}")
    return 0


def _interrupt(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    """SIGTERM unwinds like Ctrl-C: the services and the Prometheus this drill started are stopped, not orphaned."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(prog="python -m common.drill", description=__doc__.splitlines()[0])
    parser.add_argument("stage", type=int)
    parser.add_argument("scenario", choices=sorted(TELLS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        return drill(args.stage, args.scenario, args.out or REPO_ROOT / "reports" / "drills" / args.scenario)
    except (LookupError, PrometheusMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("drill stopped; everything it started is stopped too", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
