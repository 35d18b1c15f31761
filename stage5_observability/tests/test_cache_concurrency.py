"""Many clients at once: one database read for a burst of misses, and no stale read after a cancel."""
from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from .cache_contract import INVALIDATION_DELIVERY, STALENESS_WINDOW
from .test_cache import READ_PACE, TASK_READS, paced, uncached_tasks


@pytest.mark.check("S3-AC2")
def test_fifty_concurrent_reads_of_an_uncached_task_reach_the_database_once(launch, alice, create_task, wait_listed,
                                                                           database, cache):
    # Single flight presumes Redis answers (S3-AC5 grades a Redis that does not): under CI load the suite's
    # Redis can miss the 200 ms default, and a reader that times out loads without the lock, as it should.
    service = launch({"REDIS_TIMEOUT_MS": "2000"}, name="single-flight")
    [task] = uncached_tasks(alice, 1, create_task, wait_listed, cache)
    start = threading.Barrier(50)

    def read_once(_: int):
        with service.client() as client:  # a connection each: both workers, 8 threads each, are busy
            client.get("/healthz")
            start.wait(timeout=30)
            answer = client.get(f"/api/v1/tasks/{task['id']}", headers=alice.headers)
            return answer.status_code, answer.json(), answer.headers.get("X-Cache")

    with database.queries() as sent, ThreadPoolExecutor(50) as pool:
        results = list(pool.map(read_once, range(50)))
    assert [status for status, _, _ in results] == [200] * 50
    assert all(body == task for _, body, _ in results), "the concurrent reads did not all get the task"
    sources = Counter(source for _, _, source in results)
    assert sources["miss"] == 1, f"exactly one read may load the task from the database: {dict(sources)}"
    # Counting what reached the database needs MySQL/MariaDB; on SQLite this part is not gradable.
    assert len(sent.matching(TASK_READS)) == 1, sent.matching(TASK_READS)


@pytest.mark.check("S3-AC4")
def test_no_worker_serves_a_canceled_task_as_pending_past_the_window(api, service, alice, create_task):
    task = create_task(alice)
    path, headers = f"/api/v1/tasks/{task['id']}", alice.headers
    reads: list[tuple[float, str, str | None]] = []  # (sent at, status, X-Cache)
    stop = threading.Event()

    def keep_reading(fresh_connections: bool) -> None:
        client = service.client()
        while not stop.is_set():
            if fresh_connections:  # a new connection may land on either worker
                client.close()
                client = service.client()
            sent_at = time.monotonic()
            answer = client.get(path, headers=headers)
            status = answer.json()["status"] if answer.status_code == 200 else f"HTTP {answer.status_code}"
            reads.append((sent_at, status, answer.headers.get("X-Cache")))
            stop.wait(READ_PACE)
        client.close()

    readers = [threading.Thread(target=keep_reading, args=(n % 2 == 0,)) for n in range(4)]
    for reader in readers:
        reader.start()
    try:
        for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.05), reraise=True):
            with attempt:  # the readers warmed the local level of both workers and Redis
                assert sum(1 for _, _, source in reads if source in ("local", "redis")) >= 40
        canceled = api.post(f"{path}/cancel", headers=headers)
        returned_at = time.monotonic()
        assert canceled.status_code == 202 and canceled.json()["status"] == "CANCELED"
        for attempt in Retrying(stop=stop_after_delay(STALENESS_WINDOW + 10), wait=wait_fixed(0.05), reraise=True):
            with attempt:
                assert sum(1 for sent_at, _, _ in reads if sent_at > returned_at + STALENESS_WINDOW) >= 40
    finally:
        stop.set()
        for reader in readers:
            reader.join(15)
    assert not [status for _, status, _ in reads if status.startswith("HTTP")], "a read failed"
    stale = [sent_at - returned_at for sent_at, status, _ in reads if status == "PENDING" and sent_at > returned_at]
    late = [lag for lag in stale if lag > STALENESS_WINDOW]
    assert not late, f"PENDING served {max(late):.2f} s after the cancel returned (window {STALENESS_WINDOW} s)"
    assert reads[-1][1] == "CANCELED"


def warm_every_worker(service, path: str, headers: dict) -> None:
    """Read through fresh connections until two workers have loaded the task into their local level."""
    sources: list[str | None] = []
    for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.01), reraise=True):
        with attempt, service.client() as fresh:  # a new connection may land on either worker
            sources.append(fresh.get(path, headers=headers).headers.get("X-Cache"))
            # Each worker's first read comes from Redis (or the database), then from its local level, which
            # no one evicts meanwhile: two answers not "local" are two workers that now hold the task.
            loaded = sum(source != "local" for source in sources)
            assert loaded >= 2, f"the reads never reached a second worker: {sources}"


def late_reads(service, path: str, headers: dict, *, since: float,
               window: float) -> list[tuple[float, str, str | None]]:
    """Read through fresh connections for a second past `since + window`; return the reads past it not CANCELED
    as (seconds after `since`, status, X-Cache)."""
    late = []
    for now in paced(since + window + 1):
        with service.client() as fresh:
            answer = fresh.get(path, headers=headers)
        status = answer.json()["status"]
        if now > since + window and status != "CANCELED":
            late.append((now - since, status, answer.headers.get("X-Cache")))
    return late


@pytest.mark.check("S3-AC4")
def test_a_cancel_evicts_the_task_from_the_local_level_of_every_worker_even_after_an_outage(launch, alice,
                                                                                            create_task, cache):
    """With local entries living 30 s, only the invalidation (or the clear after a reconnect) ends a stale read."""
    service = launch({"CACHE_LOCAL_TTL_SECONDS": "30"}, name="long-local-ttl")
    headers = alice.headers
    for outage in (False, True):
        path = f"/api/v1/tasks/{create_task(alice)['id']}"
        warm_every_worker(service, path, headers)
        with cache.outage() if outage else contextlib.nullcontext(), service.client() as client:
            assert client.post(f"{path}/cancel", headers=headers).status_code == 202
            # An outage of 1.5 s, several retries of the cancel's cache write: its invalidation message is lost.
            until = time.monotonic() + (1.5 if outage else 0)
            for _ in paced(until):
                assert client.get(path, headers=headers).status_code == 200
        since = time.monotonic()  # the cancel returned, or Redis came back
        late = late_reads(service, path, headers, since=since, window=INVALIDATION_DELIVERY)
        assert not late, (f"a worker still served {late[-1][1]} (X-Cache {late[-1][2]}) {late[-1][0]:.2f} s after "
                          + ("Redis came back" if outage else "the cancel returned"))
