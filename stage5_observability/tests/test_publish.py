"""Create publishes the task to the broker and answers 202 only once the broker has it; with no broker, 503."""
from __future__ import annotations

import time
import uuid

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from common.testing.contract import assert_contract

from .kafka_checks import TASK_FIELDS, TASK_TOPIC, accept, drain, event, messages_for, problem_code, \
    user_task_ids, wait_row

PUBLISH_TIMEOUT_MS, PUBLISH_ATTEMPTS = 500, 2
# The documented bound on a create while no broker answers: every attempt times out (librdkafka finds an
# expired message on a scan about once a second, so its report may come up to 1 s late), plus overhead.
DEADLINE = PUBLISH_ATTEMPTS * (PUBLISH_TIMEOUT_MS / 1000 + 1.0) + 1.0
BROKER_DELAY_MS = 400


@pytest.mark.check("S4-AC1")
def test_the_202_arrives_when_the_task_is_already_on_the_topic_and_it_lands_after_the_drain(api, service, alice,
                                                                                               broker, database):
    start = broker.end_offsets(TASK_TOPIC)
    request_id = f"ac1-{uuid.uuid4().hex[:12]}"
    body = {"type": "report.build", "payload": {"month": "2026-11", "rows": [1, 2]}, "priority": 7}
    response = api.post("/api/v1/tasks", json=body, headers={**alice.headers, "X-Request-ID": request_id})
    at_202 = broker.end_offsets(TASK_TOPIC)  # at once, without waiting: the 202 says the broker has it already
    assert response.status_code == 202, f"create answered {response.status_code}: {response.text[:300]}"
    task = assert_contract(response, "POST", "/api/v1/tasks")
    on_topic = [m for m in messages_for(broker, task["id"], start=start) if m.offset < at_202[m.partition]]
    assert response.headers["Location"] == f"/api/v1/tasks/{task['id']}"
    assert (task["status"], task["type"], task["payload"], task["priority"]) == ("PENDING", *body.values())
    assert len(on_topic) == 1, f"the 202 came with {len(on_topic)} messages keyed {task['id']} on {TASK_TOPIC}"
    message = on_topic[0]
    assert message.headers.get("event-type") == b"task.created"
    assert message.headers.get("content-type") == b"application/json"
    assert message.headers.get("request-id") == request_id.encode()
    published = event(message)
    assert (published["event"], published["version"]) == ("task.created", 1)
    assert {field: published["task"].get(field) for field in TASK_FIELDS} == task
    assert published["task"]["user_id"] == alice.id
    assert published.get("idempotency") is None, "a create without Idempotency-Key published an idempotency record"

    drain(service)
    row = wait_row(database, task["id"], seconds=5)
    assert (row["user_id"], row["type"], row["payload"], row["priority"], row["status"]) == \
        (alice.id, "report.build", body["payload"], 7, "PENDING")


@pytest.mark.check("S4-AC1")
def test_with_a_slow_broker_the_202_waits_for_its_acknowledgement(api, alice, broker):
    start = broker.end_offsets(TASK_TOPIC)
    alice.headers  # noqa: B018 - registered and logged in before the clock starts
    with broker.slow(BROKER_DELAY_MS):
        started = time.monotonic()
        task = accept(api, alice)
        took = time.monotonic() - started
    on_topic = messages_for(broker, task["id"], start=start)
    assert took >= BROKER_DELAY_MS / 1000, (f"the 202 came {took * 1000:.0f} ms after the request although the "
                                            f"broker acknowledges only {BROKER_DELAY_MS} ms after a write")
    assert len(on_topic) == 1, f"{len(on_topic)} messages for the accepted task"


def readiness(client) -> tuple[int, str | None]:
    """(HTTP status, the broker's status) of /readyz, which must conform to the contract."""
    answer = client.get("/readyz")
    body = assert_contract(answer, "GET", "/readyz")
    return answer.status_code, body.get("checks", {}).get("broker", {}).get("status")


def wait_readiness(client, expected: tuple[int, str], seconds: float = 15) -> None:
    for attempt in Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(0.2), reraise=True):
        with attempt:
            assert readiness(client) == expected


def refused_in_time(client, headers: dict, body: dict) -> None:
    """POST a create while every broker is down: 503 with Retry-After, within the documented deadline."""
    started = time.monotonic()
    answer = client.post("/api/v1/tasks", json=body, headers=headers)
    took = time.monotonic() - started
    assert answer.status_code == 503, f"brokers down, yet create answered {answer.status_code}: {answer.text[:200]}"
    assert assert_contract(answer, "POST", "/api/v1/tasks")["code"] == "SERVICE_UNAVAILABLE"
    assert int(answer.headers["Retry-After"]) >= 1
    assert took <= DEADLINE, f"the 503 took {took:.1f} s; the deadline is {DEADLINE:.1f} s"


@pytest.mark.check("S4-AC2")
def test_with_every_broker_down_create_is_503_in_time_leaves_nothing_behind_and_recovers(launch, alice, database):
    service = launch({"PUBLISH_TIMEOUT_MS": str(PUBLISH_TIMEOUT_MS), "PUBLISH_ATTEMPTS": str(PUBLISH_ATTEMPTS)},
                     name="short-publish-deadline")
    body, key = {"type": "invoice.send", "payload": {"n": 1}}, f"outage-{uuid.uuid4()}"
    keyed = {**alice.headers, "Idempotency-Key": key}
    with service.client() as client:
        accepted = [accept(client, alice)["id"]]  # the producer is connected before the brokers go
        before = service.broker.end_offsets(TASK_TOPIC)
        with service.broker.outage():
            refused_in_time(client, keyed, body)
            refused_in_time(client, keyed, body)  # the same key again: free, not 409 IN_USE
            wait_readiness(client, (503, "down"))
        wait_readiness(client, (200, "up"))
        assert service.broker.end_offsets(TASK_TOPIC) == before, "a refused create reached the topic after all"

        answers = []
        for attempt in Retrying(stop=stop_after_delay(30), wait=wait_fixed(0.2), reraise=True):
            with attempt:  # no restart: the service must find the broker again by itself
                answers.append(client.post("/api/v1/tasks", json=body, headers=keyed))
                assert answers[-1].status_code == 202, [a.status_code for a in answers]
        assert {a.status_code for a in answers} <= {202, 503}, [(a.status_code, problem_code(a)) for a in answers]
        assert "Idempotent-Replayed" not in answers[-1].headers, "the key replayed a create that was refused"
        accepted.append(assert_contract(answers[-1], "POST", "/api/v1/tasks")["id"])

        drain(service)
    late = [m for m in service.broker.read(TASK_TOPIC, start=before) if m.key.decode() not in accepted]
    assert not late, f"{len(late)} messages of refused creates appeared on {TASK_TOPIC}"
    assert sorted(user_task_ids(database, alice.id)) == sorted(accepted), "the database holds a refused create"


@pytest.mark.check("S4-AC2")
def test_a_keyed_retry_after_a_slow_broker_503_lands_the_task_once(launch, alice, database):
    """A broker slower than the deadline may still write what it never acknowledged in time."""
    service = launch({"PUBLISH_TIMEOUT_MS": "500", "PUBLISH_ATTEMPTS": "1"}, name="slow-broker-retry")
    body, keyed = {"type": "invoice.send", "payload": {"n": 2}}, {**alice.headers, "Idempotency-Key": "slow-1"}
    with service.client() as client:
        accept(client, alice)  # connected before the broker slows down
        with service.broker.slow(1500):
            refused = client.post("/api/v1/tasks", json=body, headers=keyed)
        assert refused.status_code == 503, f"a 1.5 s broker and a 0.5 s deadline, yet {refused.status_code}"
        retried = client.post("/api/v1/tasks", json=body, headers=keyed)
        assert retried.status_code == 202, retried.text[:200]
        task_id = assert_contract(retried, "POST", "/api/v1/tasks")["id"]
        drain(service)
    landed = user_task_ids(database, alice.id)
    assert landed.count(task_id) == 1 and len(landed) == 2, (
        f"one warm-up task and the keyed one expected, the database holds {len(landed)}: a retry with the key "
        "created the task a second time")


# Four Kafka clients run in a stage 4 service (a producer in each of two workers, the consumer, its dead-letter
# producer); a few kinds of trouble each during an outage is readable, one line per reconnect attempt is not.
OUTAGE_SECONDS, CLIENT_LINES_MAX = 4.0, 12


def outage_lines(service, alice) -> tuple[list[str], list[str], int]:
    """(librdkafka's lines, the service's own lines, creates refused) over OUTAGE_SECONDS of every broker down."""
    body = {"type": "invoice.send", "payload": {"n": 1}}
    with service.client() as client:
        accept(client, alice)  # every client is connected before the brokers go
        seen = len(service.log_text())
        with service.broker.outage():
            until, refused = time.monotonic() + OUTAGE_SECONDS, 0
            while time.monotonic() < until:  # creates keep coming, as they would in production
                refused_in_time(client, alice.headers, body)
                refused += 1
        window = [line for line in service.log_text()[seen:].splitlines() if line.strip()]
    client_lines = [line for line in window if "rdkafka#" in line]  # librdkafka names its clients rdkafka#...
    return client_lines, [line for line in window if "rdkafka#" not in line], refused


@pytest.mark.check("S4-AC15")
def test_a_broker_outage_costs_the_log_a_few_client_lines_not_one_per_retry(launch, alice):
    service = launch({"PUBLISH_TIMEOUT_MS": str(PUBLISH_TIMEOUT_MS), "PUBLISH_ATTEMPTS": "1"}, name="quiet-outage")
    client_lines, own_lines, refused = outage_lines(service, alice)
    assert len(client_lines) <= CLIENT_LINES_MAX, (
        f"{len(client_lines)} librdkafka lines in {OUTAGE_SECONDS:.0f} s of outage ({refused} creates refused), "
        f"e.g. {client_lines[:3]}")
    assert len(own_lines) > len(client_lines), f"the service's own {len(own_lines)} lines are buried: {own_lines[:5]}"


@pytest.mark.check("S4-AC15")
def test_with_log_level_debug_the_kafka_clients_full_log_is_there(launch, alice):
    service = launch({"PUBLISH_TIMEOUT_MS": str(PUBLISH_TIMEOUT_MS), "PUBLISH_ATTEMPTS": "1", "LOG_LEVEL": "DEBUG"},
                     name="full-client-log")
    client_lines, _, refused = outage_lines(service, alice)
    # Quieted, the same outage writes at most CLIENT_LINES_MAX; asked for, every reconnect attempt is there.
    assert len(client_lines) > CLIENT_LINES_MAX, (
        f"LOG_LEVEL=DEBUG, yet only {len(client_lines)} librdkafka lines in {OUTAGE_SECONDS:.0f} s of outage "
        f"({refused} creates refused): the repeats left out of the default log are nowhere")
