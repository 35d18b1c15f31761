"""Idempotency-Key: a retry replays the first answer and publishes nothing more; per user; bad input stores nothing."""
from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from common.testing.contract import assert_contract

from .kafka_checks import TASK_TOPIC, accept, drain, messages_of_user, user_task_ids

BODY = {"type": "payment.capture", "payload": {"order": 7731, "amount": "12.50"}, "priority": 3}


def post(client, account, body, key: str):
    return client.post("/api/v1/tasks", json=body, headers={**account.headers, "Idempotency-Key": key})


def assert_problem(response, status: int, code: str) -> dict:
    """The response is the documented problem `code` with HTTP `status`."""
    assert response.status_code == status, f"expected {status} {code}: {response.status_code} {response.text[:300]}"
    problem = assert_contract(response, "POST", "/api/v1/tasks")
    assert problem["code"] == code
    return problem


def assert_replay(response, first: dict) -> None:
    """The response replays the first 202: same status, same body, marked as a replay."""
    assert response.status_code == 202, f"a replay answered {response.status_code}: {response.text[:300]}"
    assert assert_contract(response, "POST", "/api/v1/tasks") == first, "the replay's body is not the first answer's"
    assert response.headers.get("Location") == f"/api/v1/tasks/{first['id']}"
    assert response.headers.get("Idempotent-Replayed") == "true"


@pytest.mark.check("S4-AC3")
def test_the_same_key_and_body_replay_the_first_answer_and_publish_nothing_more(api, service, alice, broker,
                                                                                 database):
    start, key = broker.end_offsets(TASK_TOPIC), f"order-7731-{uuid.uuid4()}"
    first = accept(api, alice, BODY, key=key)
    assert_replay(post(api, alice, BODY, key), first)
    reordered = {k: dict(reversed(v.items())) if isinstance(v, dict) else v for k, v in reversed(BODY.items())}
    assert_replay(post(api, alice, reordered, key), first)  # the same body, its keys (payload's too) reordered
    assert_problem(post(api, alice, {**BODY, "priority": 4}, key), 422, "IDEMPOTENCY_KEY_MISMATCH")
    drain(service)
    assert_replay(post(api, alice, BODY, key), first)  # and still once the task has landed
    assert_problem(post(api, alice, {**BODY, "payload": {}}, key), 422, "IDEMPOTENCY_KEY_MISMATCH")
    drain(service)
    published = messages_of_user(broker, alice.id, start=start)
    assert [m.key for m in published] == [first["id"].encode()], f"{len(published)} messages published for one key"
    assert user_task_ids(database, alice.id) == [first["id"]]


@pytest.mark.check("S4-AC3")
def test_keys_are_scoped_to_the_user(api, alice, bob):
    key = f"shared-{uuid.uuid4()}"
    mine = accept(api, alice, BODY, key=key)
    response = post(api, bob, BODY, key)
    assert response.status_code == 202, f"bob's first use of the key answered {response.status_code}"
    theirs = assert_contract(response, "POST", "/api/v1/tasks")
    assert theirs["id"] != mine["id"] and "Idempotent-Replayed" not in response.headers, "bob got alice's task"
    assert_problem(post(api, bob, {**BODY, "priority": 9}, key), 422, "IDEMPOTENCY_KEY_MISMATCH")
    assert_replay(post(api, alice, BODY, key), mine)


@pytest.mark.check("S4-AC3")
def test_a_malformed_key_or_a_refused_body_stores_nothing(api, service, alice, broker, database):
    start = broker.end_offsets(TASK_TOPIC)
    # (Other control characters never reach the application: the HTTP server refuses them itself.)
    for malformed in ("k" * 256, "tab\tinside", "caf\u00e9-au-lait"):
        problem = assert_problem(post(api, alice, BODY, malformed), 400, "VALIDATION_FAILED")
        assert any(error.get("field") == "Idempotency-Key" for error in problem.get("errors", [])), problem
    accept(api, alice, BODY, key="k" * 255)  # the longest well-formed key

    key = f"retry-after-400-{uuid.uuid4()}"
    for refused in ({**BODY, "type": "Not A Type!"}, {**BODY, "priority": 10}, {**BODY, "status": "SUCCEEDED"}):
        assert_problem(post(api, alice, refused, key), 400, "VALIDATION_FAILED")
    first = accept(api, alice, BODY, key=key)  # the refused bodies left no record behind: neither 409 nor 422
    assert "Idempotent-Replayed" not in api.post("/api/v1/tasks", json=BODY, headers=alice.headers).headers
    assert_replay(post(api, alice, BODY, key), first)
    drain(service)
    published = [m.key.decode() for m in messages_of_user(broker, alice.id, start=start)]
    assert len(published) == 3 and first["id"] in published, f"published {len(published)} messages for 3 accepted"
    assert sorted(user_task_ids(database, alice.id)) == sorted(published)


@pytest.mark.check("S4-AC4")
def test_concurrent_first_requests_with_one_key_accept_exactly_one(service, alice, broker, database):
    start, key, clients = broker.end_offsets(TASK_TOPIC), f"burst-{uuid.uuid4()}", 20
    headers, barrier = {**alice.headers, "Idempotency-Key": key}, threading.Barrier(clients)  # logged in once

    def first_request(_: int):
        with service.client() as client:  # a connection each, so both workers take part
            client.get("/healthz")
            barrier.wait(timeout=30)
            return client.post("/api/v1/tasks", json=BODY, headers=headers)

    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(first_request, range(clients)))
    statuses = sorted((a.status_code, a.headers.get("Idempotent-Replayed", "")) for a in answers)
    originals = [a for a in answers if a.status_code == 202 and "Idempotent-Replayed" not in a.headers]
    assert len(originals) == 1, f"exactly one request may create the task: {statuses}"
    winner = assert_contract(originals[0], "POST", "/api/v1/tasks")
    for answer in answers:
        if answer is originals[0]:
            continue
        if answer.status_code == 409:
            assert_problem(answer, 409, "IDEMPOTENCY_KEY_IN_USE")
        else:
            assert_replay(answer, winner)
    drain(service)
    published = messages_of_user(broker, alice.id, start=start)
    assert [m.key for m in published] == [winner["id"].encode()], f"{len(published)} messages for one key"
    assert user_task_ids(database, alice.id) == [winner["id"]]
