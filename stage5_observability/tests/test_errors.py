"""The error mapping table of design/errors.md, each row provoked on purpose, and the database outage."""
from __future__ import annotations

import json
import uuid

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from common.testing.contract import assert_contract

from .cache_contract import evict

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "code", "request_id"}


def provoke(api, alice, bob, create_task, row: str):
    """Make the request a table row describes; return (response, method, path template)."""
    tasks, users = "/api/v1/tasks", "/api/v1/users"
    if row == "400 VALIDATION_FAILED":
        return api.post(tasks, json={"type": "t", "payload": {}, "priority": 42}, headers=alice.headers), "POST", tasks
    if row == "400 MALFORMED_JSON":
        return api.post(tasks, data=b'{"type": "t", "payload": {', headers={**alice.headers, "Content-Type":
                                                                               "application/json"}), "POST", tasks
    if row == "400 malformed id":
        return api.get(f"{tasks}/nope", headers=alice.headers), "GET", tasks + "/{task_id}"
    if row == "401 UNAUTHORIZED":
        return api.get(tasks), "GET", tasks
    if row == "401 INVALID_CREDENTIALS":
        return api.post("/api/v1/auth/login", json={"username": alice.username, "password": "wrong-password"}), \
            "POST", "/api/v1/auth/login"
    if row == "404 TASK_NOT_FOUND":
        return api.get(f"{tasks}/{uuid.uuid4()}", headers=alice.headers), "GET", tasks + "/{task_id}"
    if row == "405 METHOD_NOT_ALLOWED":
        return api.put(tasks, json={}, headers=alice.headers), None, None
    if row == "409 USERNAME_TAKEN":
        return api.post(users, json={"username": alice.username, "password": "whatever-password"}), "POST", users
    if row == "409 TASK_NOT_CANCELABLE":
        task = create_task(bob, landed=False)
        assert api.post(f"{tasks}/{task['id']}/cancel", headers=bob.headers).status_code == 202
        return api.post(f"{tasks}/{task['id']}/cancel", headers=bob.headers), "POST", tasks + "/{task_id}/cancel"
    if row == "413 PAYLOAD_TOO_LARGE":
        return api.post(tasks, json={"type": "t", "payload": {"blob": "x" * 70_000}}, headers=alice.headers), \
            "POST", tasks
    if row == "413 PAYLOAD_TOO_LARGE chunked":
        body = json.dumps({"type": "t", "payload": {"blob": "x" * 70_000}}).encode()
        chunks = (body[i:i + 8192] for i in range(0, len(body), 8192))  # no Content-Length: chunked
        return api.post(tasks, data=chunks, headers={**alice.headers, "Content-Type": "application/json"}), \
            "POST", tasks
    if row == "415 UNSUPPORTED_MEDIA_TYPE":
        return api.post(tasks, data="type=t", headers={**alice.headers, "Content-Type": "text/plain"}), "POST", tasks
    raise AssertionError(row)


ROWS = ["400 VALIDATION_FAILED", "400 MALFORMED_JSON", "400 malformed id", "401 UNAUTHORIZED",
        "401 INVALID_CREDENTIALS", "404 TASK_NOT_FOUND", "405 METHOD_NOT_ALLOWED", "409 USERNAME_TAKEN",
        "409 TASK_NOT_CANCELABLE", "413 PAYLOAD_TOO_LARGE", "413 PAYLOAD_TOO_LARGE chunked",
        "415 UNSUPPORTED_MEDIA_TYPE"]


@pytest.mark.check("S1-AC14")
@pytest.mark.parametrize("row", ROWS)
def test_each_row_of_the_error_table_gives_its_status_code_and_problem_body(api, alice, bob, create_task, row):
    response, method, path = provoke(api, alice, bob, create_task, row)
    status, code = row.split(" ", 1)
    assert response.status_code == int(status), response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = assert_contract(response, method, path) if method else response.json()
    assert PROBLEM_FIELDS <= set(body) and body["status"] == int(status)
    assert body["code"] == {"malformed id": "VALIDATION_FAILED"}.get(code, code.split(" ")[0])
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["instance"] == response.request.path_url.split("?")[0]
    if status == "405":
        assert "POST" in response.headers["Allow"] and "GET" in response.headers["Allow"]


@pytest.mark.check("S1-AC15")
def test_database_outage_gives_503_with_retry_after_then_recovers_by_itself(api, alice, create_task, wait_listed,
                                                                             database, cache):
    before = create_task(alice, landed=False)
    # Not cached (the 202 put it there): a read served from the cache would rightly need no database.
    evict(cache, alice.id, before["id"])
    wait_listed(alice, [before["id"]])
    with database.outage():
        attempts = [  # a create still needs the database: it checks that the token's owner exists
            (api.post("/api/v1/tasks", json={"type": "t", "payload": {}}, headers=alice.headers), "POST",
             "/api/v1/tasks"),
            (api.get(f"/api/v1/tasks/{before['id']}", headers=alice.headers), "GET", "/api/v1/tasks/{task_id}"),
            (api.post("/api/v1/auth/login", json={"username": alice.username, "password": alice.password}),
             "POST", "/api/v1/auth/login"),
        ]
        for response, method, path in attempts:
            assert response.status_code == 503, f"{method} {path}: {response.status_code} {response.text}"
            body = assert_contract(response, method, path)
            assert body["code"] == "SERVICE_UNAVAILABLE" and int(response.headers["Retry-After"]) >= 1
        ready = api.get("/readyz")
    for attempt in Retrying(stop=stop_after_delay(15), wait=wait_fixed(0.2), reraise=True):
        with attempt:
            after = api.post("/api/v1/tasks", json={"type": "t", "payload": {}}, headers=alice.headers)
            assert after.status_code == 202, "the service did not recover without a restart"
    assert api.get(f"/api/v1/tasks/{before['id']}", headers=alice.headers).json() == before
    assert ready.status_code == 503 and ready.json()["checks"]["database"]["status"] == "down"
