"""The drills of design/bottlenecks.md at the level of /metrics: each fault moves the series that should tell, and the
series that should not stays flat [定位常见瓶颈：DB 慢、Kafka 卡、缓存穿透]."""
from __future__ import annotations

import pytest

from common.ids import uuid7

from .telemetry import moved, producer_metrics, scrape, total

DB_DELAY_MS = 150
SLOW = "0.1"  # a bucket edge of the documented histograms below the added delay


def slower_than_edge(before, after, name: str, **labels: str) -> float:
    """How many more observations of histogram `name` took longer than the SLOW edge."""
    return (moved(before, after, f"{name}_count", **labels)
            - moved(before, after, f"{name}_bucket", **labels, le=SLOW))


@pytest.mark.check("S5-AC8")
def test_a_slow_database_moves_query_and_route_latency_but_not_publish_errors(service, alice, database, create_task):
    create_task(alice)
    api = service.client()
    before = scrape(producer_metrics(service))
    with database.slow(DB_DELAY_MS):
        for _ in range(5):
            assert api.get("/api/v1/tasks", headers=alice.headers).status_code == 200
    after = scrape(producer_metrics(service))
    assert slower_than_edge(before, after, "db_query_duration_seconds") >= 5, "statements past 0.1 s not counted"
    listing = {"route": "/api/v1/tasks", "method": "GET", "status": "200"}
    assert slower_than_edge(before, after, "http_server_request_duration_seconds", **listing) == 5
    assert moved(before, after, "broker_publish_errors_total") == 0, "a slow database is not a broker problem"
    assert moved(before, after, "redis_errors_total") == 0


@pytest.mark.check("S5-AC8")
def test_the_broker_down_moves_publish_errors_and_readiness_but_not_database_latency(launch, new_account):
    service = launch({"PUBLISH_TIMEOUT_MS": "500", "PUBLISH_ATTEMPTS": "1"}, name="broker-down-drill")
    assert service.broker is not None
    account = new_account()
    api = service.client()
    api.post("/api/v1/tasks", json={"type": "warm.up", "payload": {}}, headers=account.headers)
    assert api.get("/readyz").status_code == 200
    before = scrape(producer_metrics(service))
    assert total(before, "readiness_status", dependency="broker") == 1
    with service.broker.outage():
        refused = [api.post("/api/v1/tasks", json={"type": "email.send", "payload": {"n": n}},
                            headers=account.headers).status_code for n in range(3)]
        assert refused == [503] * 3
        assert api.get("/readyz").status_code == 503
        during = scrape(producer_metrics(service))
    assert moved(before, during, "broker_publish_errors_total") >= 3, "every unacknowledged attempt is counted"
    assert moved(before, during, "tasks_rejected_total", reason="SERVICE_UNAVAILABLE") == 3
    assert moved(before, during, "broker_publish_duration_seconds_count", outcome="failed") == 3
    assert total(during, "readiness_status", dependency="broker") == 0, "readiness names the broker"
    assert slower_than_edge(before, during, "db_query_duration_seconds") == 0, "the database was not slow"


@pytest.mark.check("S5-AC8")
def test_reads_of_random_unknown_ids_move_the_negative_cache_and_miss_counters_but_not_the_database_pool(
        service, alice):
    api = service.client()
    unknown = [uuid7() for _ in range(30)]
    before = scrape(producer_metrics(service))
    for _ in range(2):
        assert {api.get(f"/api/v1/tasks/{task_id}", headers=alice.headers).status_code for task_id in unknown} == {404}
    after = scrape(producer_metrics(service))
    assert moved(before, after, "cache_lookups_total", level="redis", result="miss") >= 30, "each new id missed Redis"
    assert moved(before, after, "cache_lookups_total", result="negative_hit") == 30, "each reread answered negative"
    assert moved(before, after, "cache_lookups_total", result="hit") == 0
    assert moved(before, after, "tasks_accepted_total") == 0
    assert moved(before, after, "db_pool_timeouts_total") == 0
