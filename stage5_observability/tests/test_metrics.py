"""GET /metrics: RED per route template summed over the workers, business counters that move by what was done,
labels no client can mint, and counts that survive a worker's restart."""
from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from tenacity import Retrying, stop_after_delay, wait_fixed

from common.ids import uuid7

from .telemetry import METHODS, REQUESTS, ROUTES, label_values, moved, producer_metrics, scrape, total

CREATE = {"route": "/api/v1/tasks", "method": "POST"}
READ = {"route": "/api/v1/tasks/<task_id>", "method": "GET"}


def fresh(method: str, url: str, **kwargs) -> requests.Response:
    """One request on a connection of its own, so that the requests of a burst spread over the workers."""
    with requests.Session() as session:
        return session.request(method, url, timeout=15, headers={"Connection": "close", **kwargs.pop("headers", {})},
                               **kwargs)


@pytest.mark.check("S5-AC1")
def test_a_burst_is_counted_per_route_and_status_across_workers_and_business_counters_move_exactly(service, alice):
    alice.token  # noqa: B018 - registered and logged in before the first scrape
    url, auth = service.url, alice.headers
    body = {"type": "email.send", "payload": {"to": "a@b.c"}}
    before = scrape(producer_metrics(service))
    with ThreadPoolExecutor(8) as pool:
        plain = list(pool.map(lambda _: fresh("POST", f"{url}/api/v1/tasks", json=body, headers=auth), range(9)))
        first = fresh("POST", f"{url}/api/v1/tasks", json=body, headers={**auth, "Idempotency-Key": "burst-1"})
        replays = list(pool.map(lambda _: fresh("POST", f"{url}/api/v1/tasks", json=body,
                                                headers={**auth, "Idempotency-Key": "burst-1"}), range(5)))
        invalid = list(pool.map(lambda i: fresh("POST", f"{url}/api/v1/tasks", json={"type": "Bad Type!"},
                                                headers=auth), range(3)))
        anonymous = fresh("POST", f"{url}/api/v1/tasks", json=body)
        missing = list(pool.map(lambda _: fresh("GET", f"{url}/api/v1/tasks/{uuid7()}", headers=auth), range(4)))
    assert [r.status_code for r in plain + [first] + replays] == [202] * 15
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in replays)
    assert [r.status_code for r in invalid] == [400] * 3 and anonymous.status_code == 401
    assert [r.status_code for r in missing] == [404] * 4

    # Whichever worker answers the scrape, it reports every worker's requests.
    for _ in range(4):
        after = scrape(producer_metrics(service))
        count = f"{REQUESTS}_count"
        assert moved(before, after, count, **CREATE, status="202") == 15, "creates answered 202, counted"
        assert moved(before, after, count, **CREATE, status="400") == 3
        assert moved(before, after, count, **CREATE, status="401") == 1
        assert moved(before, after, count, **READ, status="404") == 4
        assert moved(before, after, f"{REQUESTS}_bucket", **CREATE, status="202", le="+Inf") == 15
        assert moved(before, after, "tasks_accepted_total") == 10, "10 new tasks accepted (replays excluded)"
        assert moved(before, after, "idempotency_replays_total") == 5
        assert moved(before, after, "tasks_rejected_total", reason="VALIDATION_FAILED") == 3
        assert moved(before, after, "tasks_rejected_total", reason="UNAUTHORIZED") == 1
        assert moved(before, after, "tasks_rejected_total") == 4
    workers = label_values(after, "pid", "process_resident_memory_bytes")
    assert len(workers) >= 2, f"the memory of each live worker is exported (pids: {sorted(workers)})"
    assert total(after, "process_cpu_seconds_total") > 0


@pytest.mark.check("S5-AC2")
def test_unknown_paths_random_ids_and_odd_methods_mint_no_label_values(service, alice):
    token = uuid.uuid4().hex
    url = service.url
    for path in (f"/{token}", f"/api/v1/{token}", f"/api/v1/tasks/{token}/cancel/{token}", f"/healthz/{token}"):
        assert fresh("GET", url + path).status_code == 404
    for _ in range(3):
        fresh("GET", f"{url}/api/v1/tasks/{uuid7()}", headers=alice.headers)
        fresh("GET", f"{url}/api/v1/tasks/{token[:12]}", headers=alice.headers)  # malformed: 400
    for method in ("BREW", token[:10].upper(), "PROPFIND"):
        fresh(method, f"{url}/api/v1/tasks")
        fresh(method, f"{url}/{token}")
    samples = scrape(producer_metrics(service))
    every_value = {value for (_, labels) in samples for _, value in labels}
    assert not [v for v in every_value if token in v or token[:10].upper() in v], "a client's string became a label"
    routes = label_values(samples, "route")
    assert "unmatched" in routes, "unknown paths are counted under one fixed route value"
    assert routes <= ROUTES | {r for r in routes if r.startswith(("/docs", "/static"))}, routes - ROUTES
    assert label_values(samples, "method") <= METHODS, label_values(samples, "method") - METHODS
    assert "other" in label_values(samples, "method"), "odd methods are counted under one fixed method value"


@pytest.mark.check("S5-AC6")
def test_counts_survive_worker_restarts_and_the_multiprocess_directory_stays_bounded(launch, tmp_path):
    directory = tmp_path / "metrics"
    workers = 2
    service = launch({"GUNICORN_MAX_REQUESTS": "20", "PROMETHEUS_MULTIPROC_DIR": str(directory),
                      "WEB_CONCURRENCY": str(workers)}, name="restarts")
    health = {"route": "/healthz", "method": "GET"}
    sent = total(scrape(producer_metrics(service)), f"{REQUESTS}_count", **health)  # the start's own probes
    seen, files = [], []
    for _ in range(6):
        for _ in range(50):
            assert fresh("GET", f"{service.url}/healthz").status_code == 200
        sent += 50
        # A restarted worker's counts stay in the sum: the count never goes down, and reaches what was sent.
        for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.2), reraise=True):
            with attempt:
                counted = total(scrape(producer_metrics(service)), f"{REQUESTS}_count", **health)
                assert counted == sent, f"after {sent} requests /metrics counts {counted}"
        seen.append(counted)
        files.append(len(list(directory.glob("*.db"))))
    assert seen == sorted(seen), f"a count went down: {seen}"
    restarts = service.log_text().count("Booting worker")
    assert restarts >= 10, f"only {restarts} workers booted: GUNICORN_MAX_REQUESTS had no effect"
    # Bounded: a file per kind of value for each live worker, and at most one more per kind for the dead ones.
    # (A scrape's pids cannot count the workers: one may be between its exit and its successor's start.)
    kinds = {re.sub(r"_(\d+|archive)\.db$", "", path.name) for path in directory.glob("*.db")}
    bound = len(kinds) * (workers + 1)
    assert max(files) <= bound, (f"{max(files)} .db files after {restarts - workers} restarts, more than {len(kinds)} "
                                 f"kinds x ({workers} workers + 1): the directory grows with restarts ({files})")
