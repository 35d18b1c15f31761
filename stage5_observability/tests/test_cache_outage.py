"""Redis taken away or hung mid-run: no request fails, reads fall back to the database, the cache comes back."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests
from tenacity import Retrying, stop_after_delay, wait_fixed

from common.testing.contract import assert_contract

from .cache_contract import HANG_BOUND, STALENESS_WINDOW, cached_task, evict, task_key
from .kafka_checks import accept
from .test_cache import READ_PACE, paced, uncached_tasks


def cache_check(api) -> tuple[int, str, str]:
    """(HTTP status, overall status, the cache's status) of /readyz, which must conform to the contract."""
    answer = api.get("/readyz")
    body = assert_contract(answer, "GET", "/readyz")
    return answer.status_code, body.get("status"), body.get("checks", {}).get("cache", {}).get("status")


def wait_for_cache(api, state: str, seconds: float = 10) -> None:
    for attempt in Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(0.1), reraise=True):
        with attempt:
            assert cache_check(api) == (200, "ready", state), cache_check(api)


class Traffic:
    """A client that keeps creating, reading and cancelling tasks, and records every answer it did not expect."""

    def __init__(self, service, account) -> None:
        self.service, self.account = service, account
        self.done, self.failures = 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        with self.service.client() as client:
            headers = self.account.headers
            while not self._stop.is_set():
                try:
                    created = client.post("/api/v1/tasks", json={"type": "drill", "payload": {}}, headers=headers)
                    self._expect(created, 202, "PENDING")
                    path = f"/api/v1/tasks/{created.json()['id']}"
                    self._expect(client.get(path, headers=headers), 200, "PENDING")
                    self._expect(client.get(path, headers=headers), 200, "PENDING")
                    self._expect(client.post(f"{path}/cancel", headers=headers), 202, "CANCELED")
                    self._expect(client.get(path, headers=headers), 200, "CANCELED")
                except Exception as exc:  # noqa: BLE001 - a dropped connection is a failed request too
                    self.failures.append(repr(exc))
                self.done += 1
                self._stop.wait(READ_PACE)

    def _expect(self, answer, status: int, task_status: str) -> None:
        if answer.status_code != status or answer.json().get("status") != task_status:
            self.failures.append(f"{answer.request.method} {answer.request.path_url}: {answer.status_code} "
                                 f"{answer.text[:200]}")

    def wait_for(self, rounds: int, *, seconds: float = 0.0) -> None:
        """Until `rounds` more rounds are done and at least `seconds` have passed."""
        target, until = self.done + rounds, time.monotonic() + seconds
        for attempt in Retrying(stop=stop_after_delay(20 + seconds), wait=wait_fixed(0.05), reraise=True):
            with attempt:
                assert self.done >= target and time.monotonic() >= until, f"the traffic is at {self.done} rounds"

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(30)
        return self.failures


@pytest.mark.check("S3-AC5")
def test_redis_stopped_mid_run_costs_no_failed_request_and_the_cache_fills_again(api, service, alice, create_task,
                                                                                    cache):
    warm = create_task(alice)  # landed: a cancel that finds no cache reads it from the database
    path = f"/api/v1/tasks/{warm['id']}"
    api.get(path, headers=alice.headers)
    assert api.get(path, headers=alice.headers).headers.get("X-Cache") in ("local", "redis"), "the cache is not in use"
    traffic = Traffic(service, alice)
    try:
        traffic.wait_for(3)
        with cache.outage():
            wait_for_cache(api, "degraded")
            canceled = api.post(f"{path}/cancel", headers=alice.headers)  # Redis still holds it as PENDING
            assert canceled.status_code == 202 and canceled.json()["status"] == "CANCELED"
            traffic.wait_for(5, seconds=1.5)  # longer than the delayed delete: both deletes meet the outage
        restored_at = time.monotonic()
        wait_for_cache(api, "up")
        traffic.wait_for(3)
    finally:
        failures = traffic.stop()
    assert not failures, f"{len(failures)} failed requests, e.g. {failures[:3]}"
    # Back: reads fill the cache again, and the entry Redis kept from before the outage is not served.
    fresh = create_task(alice)
    evict(cache, alice.id, fresh["id"])  # what the 202 cached: the read below must fill it
    for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.1), reraise=True):
        with attempt:
            api.get(f"/api/v1/tasks/{fresh['id']}", headers=alice.headers)
            assert cached_task(cache.client.get(task_key(alice.id, fresh["id"]))) == fresh, "the cache did not fill"
    late = []
    for now in paced(restored_at + STALENESS_WINDOW + 1):
        with service.client() as client:
            status = client.get(path, headers=alice.headers).json()["status"]
        if now > restored_at + STALENESS_WINDOW and status != "CANCELED":
            late.append(status)
    assert not late, f"served {late[0]} for a task canceled during the outage, {STALENESS_WINDOW} s after Redis came back"


@pytest.mark.check("S3-AC5")
def test_a_hanging_redis_slows_a_request_by_no_more_than_the_documented_bound(api, alice, create_task, wait_listed,
                                                                             cache):
    tasks = uncached_tasks(alice, 3, create_task, wait_listed, cache)
    with cache.hang():
        for task in tasks:
            started = time.monotonic()
            try:
                answer = api.get(f"/api/v1/tasks/{task['id']}", headers=alice.headers, timeout=HANG_BOUND + 4)
            except requests.Timeout:
                pytest.fail(f"a read got no answer within {HANG_BOUND + 4} s while Redis hung (bound {HANG_BOUND} s)")
            took = time.monotonic() - started
            assert answer.status_code == 200 and answer.json() == task
            assert answer.headers.get("X-Cache") == "miss", "with Redis hanging, the read must come from the database"
            assert took < HANG_BOUND, f"a read took {took:.2f} s while Redis hung (bound {HANG_BOUND} s)"
        started = time.monotonic()
        canceled = api.post(f"/api/v1/tasks/{tasks[0]['id']}/cancel", headers=alice.headers)
        assert canceled.status_code == 202 and time.monotonic() - started < HANG_BOUND
        started = time.monotonic()
        assert cache_check(api) == (200, "ready", "degraded")
        assert time.monotonic() - started < HANG_BOUND, "readiness waited on the hung cache"
    wait_for_cache(api, "up")
    assert api.get(f"/api/v1/tasks/{tasks[0]['id']}", headers=alice.headers).json()["status"] == "CANCELED"


@pytest.mark.check("S3-AC5")
def test_a_cancel_accepted_while_redis_was_away_is_what_its_worker_reads_after_redis_returns(api, service, alice,
                                                                                             create_task, cache):
    tasks = [create_task(alice) for _ in range(6)]  # Redis holds each as PENDING, and keeps that through the outage
    with service.client() as client:  # one connection, so one worker: the one that accepted the cancels
        with cache.outage():
            wait_for_cache(api, "degraded")
            for task in tasks:
                answer = client.post(f"/api/v1/tasks/{task['id']}/cancel", headers=alice.headers)
                assert answer.status_code == 202 and answer.json()["status"] == "CANCELED", answer.text
        # Redis is back with the PENDING entries; the worker resubscribes and rewrites them, in either order.
        until = time.monotonic() + 2
        for _ in paced(until):
            for task in tasks:
                answer = client.get(f"/api/v1/tasks/{task['id']}", headers=alice.headers)
                assert answer.json()["status"] == "CANCELED", (
                    f"read {answer.json()['status']} (X-Cache {answer.headers.get('X-Cache')}) for a task this "
                    "worker canceled while Redis was away: Redis's older entry was served after it came back")


# One Redis session per request: once a call of a request has timed out, the rest of the request skips Redis.
ONE_TIMEOUT_MS = 1_000  # long, so that one timeout and two are far apart
# The request's own work on top of that timeout: the owner check, the broker's ack, the landing it waits for.
OWN_WORK_SECONDS = 0.75


@pytest.mark.check("S4-AC13")
def test_a_create_or_cancel_while_redis_hangs_costs_one_redis_timeout(launch, alice, cache, wait_listed):
    service = launch(env={"REDIS_TIMEOUT_MS": str(ONE_TIMEOUT_MS)}, name="redis-timeout-1s")
    bound = ONE_TIMEOUT_MS / 1000 + OWN_WORK_SECONDS
    timed: dict[str, tuple[int, float]] = {}
    with service.client() as client:  # one connection, so one worker: the one that accepted the tasks
        tasks = [accept(client, alice) for _ in range(2)]
        # Landed: the consumer has joined its group and keeps up, so a landing waited for costs milliseconds.
        wait_listed(alice, [task["id"] for task in tasks], client=client)
        calls = {
            "create": lambda: client.post("/api/v1/tasks", json={"type": "hang", "payload": {}}, headers=alice.headers),
            "create with an Idempotency-Key": lambda: client.post(
                "/api/v1/tasks", json={"type": "hang", "payload": {}},
                headers={**alice.headers, "Idempotency-Key": uuid.uuid4().hex}),
            "cancel": lambda: client.post(f"/api/v1/tasks/{tasks[0]['id']}/cancel", headers=alice.headers),
        }
        with cache.hang():
            for name, call in calls.items():
                started = time.monotonic()
                answer = call()
                timed[name] = (answer.status_code, round(time.monotonic() - started, 2))
    assert timed["create"][0] == 202 and timed["cancel"][0] == 202, timed
    assert timed["create with an Idempotency-Key"][0] == 503, f"a key cannot be claimed without Redis: {timed}"
    slow = {name: took for name, (_, took) in timed.items() if took > bound}
    assert not slow, (f"with Redis hanging, these took longer than one REDIS_TIMEOUT_MS ({ONE_TIMEOUT_MS} ms) "
                      f"and {OWN_WORK_SECONDS} s of their own work: {slow}")
