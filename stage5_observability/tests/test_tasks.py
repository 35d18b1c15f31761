"""Read, list and page tasks, and what the API refuses (create and cancel themselves: S4-AC1, S4-AC8)."""
from __future__ import annotations

import re
import threading
import uuid

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from common.testing.contract import assert_contract

RFC3339_UTC_MICROS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.mark.check("S1-AC4")
def test_get_returns_the_task_and_404_for_an_unknown_id_and_400_for_a_malformed_one(api, alice, create_task):
    task = create_task(alice)
    found = api.get(f"/api/v1/tasks/{task['id']}", headers=alice.headers)
    assert found.status_code == 200 and assert_contract(found, "GET", "/api/v1/tasks/{task_id}") == task
    missing = api.get(f"/api/v1/tasks/{uuid.uuid4()}", headers=alice.headers)
    assert missing.status_code == 404
    assert assert_contract(missing, "GET", "/api/v1/tasks/{task_id}")["code"] == "TASK_NOT_FOUND"
    for malformed in ("not-a-uuid", "1234", task["id"][:-1], task["id"] + "0"):
        response = api.get(f"/api/v1/tasks/{malformed}", headers=alice.headers)
        assert response.status_code == 400, malformed
        assert assert_contract(response, "GET", "/api/v1/tasks/{task_id}")["code"] == "VALIDATION_FAILED"


def _pages(api, account, **params) -> list[dict]:
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/v1/tasks", params=query, headers=account.headers)
        assert response.status_code == 200, response.text
        page = assert_contract(response, "GET", "/api/v1/tasks")
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


@pytest.mark.check("S1-AC5")
def test_list_is_newest_first_in_keyset_pages_and_filters_by_status(api, alice, create_task, wait_listed):
    created = [create_task(alice, landed=False, type=f"job.{n}") for n in range(5)]
    wait_listed(alice, [t["id"] for t in created])
    assert api.post(f"/api/v1/tasks/{created[1]['id']}/cancel", headers=alice.headers).status_code == 202
    wait_listed(alice, [created[1]["id"]], status="CANCELED")  # the consumer applies the cancel
    pages = _pages(api, alice, limit=2)
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    listed = [t["id"] for p in pages for t in p["items"]]
    assert listed == [t["id"] for t in reversed(created)]
    assert _pages(api, alice)[0]["items"][0]["id"] == created[-1]["id"]
    canceled = [t["id"] for p in _pages(api, alice, status="CANCELED") for t in p["items"]]
    assert canceled == [created[1]["id"]]
    pending = [t["id"] for p in _pages(api, alice, status="PENDING", limit=100) for t in p["items"]]
    assert pending == [t["id"] for t in reversed(created) if t["id"] != created[1]["id"]]


@pytest.mark.check("S1-AC5")
@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"status": "DONE"},
                                    {"cursor": "not-a-cursor"}, {"cursor": "AAAA"}, {"cursor": "\U0001F600" * 512},
                                    {"colour": "red"},
                                    {"limit": ["2", "3"]}], ids=str)
def test_list_refuses_bad_parameters(api, alice, params):
    response = api.get("/api/v1/tasks", params=params, headers=alice.headers)
    assert response.status_code == 400
    body = assert_contract(response, "GET", "/api/v1/tasks")
    assert body["code"] == "VALIDATION_FAILED"
    # The one bad parameter is named, and nothing else: a client must learn which field to fix.
    assert {error["field"] for error in body["errors"]} == set(params), body["errors"]


@pytest.mark.check("S1-AC6")
def test_pagination_never_skips_or_repeats_while_tasks_are_being_created(api, alice, create_task, wait_listed):
    existing = [create_task(alice, landed=False)["id"] for _ in range(25)]
    wait_listed(alice, existing)
    created_meanwhile: list[str] = []
    stop = threading.Event()

    def keep_creating():
        with api.__class__(api.base_url) as writer:
            while not stop.is_set():
                response = writer.post("/api/v1/tasks", json={"type": "noise", "payload": {}}, headers=alice.headers)
                if response.status_code == 202:
                    created_meanwhile.append(response.json()["id"])

    def wait_for_a_task_landed_after(count: int) -> None:
        # Between two page reads at least one task lands (the newest listed is one accepted since the last
        # read), so every page boundary is crossed by a write to the database, not only by a 202.
        for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.01), reraise=True):
            with attempt:
                newest = api.get("/api/v1/tasks", params={"limit": 1}, headers=alice.headers).json()["items"]
                assert newest and newest[0]["id"] in created_meanwhile[count:], \
                    "no task the background writer created landed while paging"

    writer = threading.Thread(target=keep_creating)
    writer.start()
    seen, cursor, pages = [], None, 0
    try:
        while pages == 0 or cursor:
            created_before = len(created_meanwhile)
            response = api.get("/api/v1/tasks", params={"limit": 4, **({"cursor": cursor} if cursor else {})},
                               headers=alice.headers)
            assert response.status_code == 200, response.text
            page = assert_contract(response, "GET", "/api/v1/tasks")
            seen += [t["id"] for t in page["items"]]
            cursor, pages = page["next_cursor"], pages + 1
            wait_for_a_task_landed_after(created_before)
    finally:
        stop.set()
        writer.join()
    assert pages >= 7 and created_meanwhile, "the pages were not read while tasks were being created"
    assert len(seen) == len(set(seen)), "an item was repeated"
    assert [i for i in seen if i in set(existing)] == list(reversed(existing)), "an item was skipped"
    assert seen == sorted(seen, key=lambda i: uuid.UUID(i).bytes, reverse=True)


@pytest.mark.check("S1-AC9")
@pytest.mark.parametrize("payload", [
    {},
    {"nested": {"deeper": {"list": [1, 2.5, True, None, "x", {"k": []}]}}},
    {"unicode": "任务 ✓ émoji 🚀", "escaped": "line\nbreak \"quoted\" \\ back\u0000slash"},
    {"big": "x" * 60_000},
], ids=["empty", "nested", "unicode", "60KiB"])
def test_payload_round_trips_exactly(api, alice, create_task, wait_listed, payload):
    task = create_task(alice, landed=False, payload=payload)
    assert task["payload"] == payload
    fetched = api.get(f"/api/v1/tasks/{task['id']}", headers=alice.headers).json()
    assert fetched["payload"] == payload
    # The listing reads the database: the payload also survived the topic, the consumer and the row.
    stored = wait_listed(alice, [task["id"]])[task["id"]]
    assert stored == task
    for answer in (task, fetched, stored):
        assert RFC3339_UTC_MICROS.match(answer["created_at"]) and RFC3339_UTC_MICROS.match(answer["updated_at"])


@pytest.mark.check("S1-AC13")
@pytest.mark.parametrize("body,field", [
    ({"type": "t", "payload": {}, "id": "0190a000-0000-7000-8000-000000000001"}, "id"),
    ({"type": "t", "payload": {}, "status": "SUCCEEDED"}, "status"),
    ({"type": "t", "payload": {}, "user_id": "0190a000-0000-7000-8000-000000000002"}, "user_id"),
    ({"type": "t", "payload": {}, "priority": "5"}, "priority"),
    ({"type": "t", "payload": {}, "priority": 7.5}, "priority"),
    ({"type": "t", "payload": {}, "priority": True}, "priority"),
    ({"type": "t", "payload": {}, "priority": 10}, "priority"),
    ({"type": "t", "payload": {}, "priority": -1}, "priority"),
    ({"type": "t", "payload": []}, "payload"),
    ({"type": "t", "payload": None}, "payload"),
    ({"type": "t"}, "payload"),
    ({"type": "Has Caps", "payload": {}}, "type"),
    ({"type": "", "payload": {}}, "type"),
    ({"type": "x" * 65, "payload": {}}, "type"),
    ({"payload": {}}, "type"),
], ids=lambda v: str(v)[:40])
def test_create_refuses_unknown_fields_and_wrong_types(api, alice, body, field):
    response = api.post("/api/v1/tasks", json=body, headers=alice.headers)
    assert response.status_code == 400
    problem = assert_contract(response, "POST", "/api/v1/tasks")
    assert problem["code"] == "VALIDATION_FAILED"
    assert field in {error["field"] for error in problem["errors"]}


@pytest.mark.check("S1-AC13")
@pytest.mark.parametrize("body,field", [
    ({"username": "ab", "password": "long enough"}, "username"),
    ({"username": "has space", "password": "long enough"}, "username"),
    ({"username": "x" * 33, "password": "long enough"}, "username"),
    ({"username": "fine_name", "password": "short"}, "password"),
    ({"username": "fine_name", "password": "p" * 129}, "password"),
    ({"username": "fine_name", "password": "long enough", "is_admin": True}, "is_admin"),
    ({"username": "fine_name"}, "password"),
], ids=lambda v: str(v)[:40])
def test_register_refuses_bad_usernames_passwords_and_extra_fields(api, body, field):
    response = api.post("/api/v1/users", json=body)
    assert response.status_code == 400
    assert field in {e["field"] for e in assert_contract(response, "POST", "/api/v1/users")["errors"]}
