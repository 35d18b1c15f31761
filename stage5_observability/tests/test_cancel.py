"""Cancel travels through the task topic after its create: 202 CANCELED, never PENDING again, and one winner."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from common.testing.contract import assert_contract

from .cache_contract import evict
from .kafka_checks import TASK_TOPIC, accept, drain, event, messages_for, task_row

CANCEL = "/api/v1/tasks/{task_id}/cancel"


def assert_not_cancelable(response) -> None:
    assert response.status_code == 409, f"expected 409, got {response.status_code}: {response.text[:200]}"
    assert assert_contract(response, "POST", CANCEL)["code"] == "TASK_NOT_CANCELABLE"


@pytest.mark.check("S4-AC8")
def test_a_cancel_right_after_the_create_is_202_canceled_and_ends_canceled_never_pending(api, service, alice,
                                                                                           broker, database, cache):
    start = broker.end_offsets(TASK_TOPIC)
    task = accept(api, alice)
    path = f"/api/v1/tasks/{task['id']}"
    answer = api.post(f"{path}/cancel", headers=alice.headers)  # at once: the create has most likely not landed
    assert answer.status_code == 202, f"cancel answered {answer.status_code}: {answer.text[:200]}"
    canceled = assert_contract(answer, "POST", CANCEL)
    assert canceled["status"] == "CANCELED"
    assert {k: v for k, v in canceled.items() if k not in ("status", "updated_at")} == \
        {k: v for k, v in task.items() if k not in ("status", "updated_at")}
    assert canceled["updated_at"] >= task["updated_at"]
    for _ in range(6):  # read-your-writes for the cancel too, from either worker
        with service.client() as fresh:
            read = fresh.get(path, headers=alice.headers)
        assert read.status_code == 200 and read.json()["status"] == "CANCELED", read.text[:200]
    assert_not_cancelable(api.post(f"{path}/cancel", headers=alice.headers))

    drain(service)
    row = task_row(database, task["id"])
    assert row is not None and row["status"] == "CANCELED", f"after the drain the task is {row and row['status']}"
    history = messages_for(broker, task["id"], start=start)
    assert [m.headers.get("event-type") for m in history] == [b"task.created", b"task.canceled"]
    assert len({m.partition for m in history}) == 1, "the cancel went to another partition than its create"
    assert event(history[1])["task"]["status"] == "CANCELED"
    assert api.get(path, headers=alice.headers).json()["status"] == "CANCELED"
    assert_not_cancelable(api.post(f"{path}/cancel", headers=alice.headers))
    # One day Redis holds nothing of the task (expiry, a restart): its status alone still refuses a cancel.
    for key in cache.client.scan_iter(match=f"*{task['id']}*"):
        cache.client.delete(key)
    evict(cache, alice.id, task["id"])  # and every process's local copy
    assert_not_cancelable(api.post(f"{path}/cancel", headers=alice.headers))
    assert [m.headers.get("event-type") for m in messages_for(broker, task["id"], start=start)] == \
        [b"task.created", b"task.canceled"], "a cancel refused as not cancelable was published"


@pytest.mark.check("S4-AC8")
def test_of_concurrent_cancels_exactly_one_wins(service, alice, broker, database):
    start, clients = broker.end_offsets(TASK_TOPIC), 10
    headers, barrier = alice.headers, threading.Barrier(clients)  # logged in once, before the threads
    with service.client() as client:
        path = f"/api/v1/tasks/{accept(client, alice)['id']}"

    def cancel(_: int):
        with service.client() as client:  # a connection each, so both workers take part
            client.get("/healthz")
            barrier.wait(timeout=30)
            return client.post(f"{path}/cancel", headers=headers)

    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(cancel, range(clients)))
    winners = [a for a in answers if a.status_code == 202]
    assert len(winners) == 1, f"{len(winners)} cancels answered 202: {sorted(a.status_code for a in answers)}"
    assert assert_contract(winners[0], "POST", CANCEL)["status"] == "CANCELED"
    for answer in answers:
        if answer is not winners[0]:
            assert_not_cancelable(answer)
    drain(service)
    task_id = path.rsplit("/", 1)[1]
    events = [m.headers.get("event-type") for m in messages_for(broker, task_id, start=start)]
    assert events == [b"task.created", b"task.canceled"], f"published {events}"
    assert task_row(database, task_id)["status"] == "CANCELED"
