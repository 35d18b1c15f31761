"""The cache's and the consumer's series move by what was done: hits and misses per level, negative hits, landings,
dead letters, landing delays and lag."""
from __future__ import annotations

import json

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from common.ids import uuid7

from .kafka_checks import created_event, drain, event_headers, publish
from .telemetry import consumer_metrics, label_values, moved, producer_metrics, scrape, total

LOOKUPS = "cache_lookups_total"


@pytest.mark.check("S5-AC4")
def test_reads_count_per_cache_level_and_unknown_ids_count_negative_hits(service, alice, create_task):
    task = create_task(alice)
    api = service.client()  # one connection: its reads stay on one worker, whose local level they see
    before = scrape(producer_metrics(service))
    assert api.get(f"/api/v1/tasks/{task['id']}", headers=alice.headers).status_code == 200
    unknown = uuid7()
    assert [api.get(f"/api/v1/tasks/{unknown}", headers=alice.headers).status_code for _ in range(2)] == [404, 404]
    after = scrape(producer_metrics(service))
    assert moved(before, after, LOOKUPS, level="local") == 3, "three reads, each looked up locally first"
    assert moved(before, after, LOOKUPS, level="redis", result="miss") >= 1, "the unknown id's first read missed Redis"
    negative = moved(before, after, LOOKUPS, result="negative_hit")
    assert negative == 1, f"the unknown id's second read is a negative hit (on either level), counted {negative}"
    hits = moved(before, after, LOOKUPS, result="hit")
    assert hits == 1, f"the accepted task is in the cache (read-your-writes): one hit, counted {hits}"


@pytest.mark.check("S5-AC4")
def test_the_consumer_counts_landings_and_a_dead_letter_and_exports_delay_and_lag(service, alice, broker):
    url = consumer_metrics(service)
    good = [created_event(alice.id) for _ in range(4)]
    before = scrape(url)
    records = [(e["task"]["id"].encode(), json.dumps(e).encode(), event_headers("task.created"), 0) for e in good]
    records.insert(2, (str(uuid7()).encode(), b"not json", event_headers("task.created"), 0))
    publish(broker.bootstrap, records)
    drain(service)
    for attempt in Retrying(stop=stop_after_delay(15), wait=wait_fixed(0.2), reraise=True):
        with attempt:
            after = scrape(url)
            assert moved(before, after, "consumer_messages_total", outcome="landed") == 4
            assert moved(before, after, "consumer_messages_total", outcome="dead_lettered") == 1
            assert moved(before, after, "task_landing_delay_seconds_count") == 4
            partitions = label_values(after, "partition", "kafka_consumer_lag_messages")
            assert len(partitions) >= 2, f"lag is exported per partition of the task topic: {sorted(partitions)}"
    assert total(after, "kafka_consumer_lag_messages") >= 0
    assert total(after, "process_resident_memory_bytes") > 0
