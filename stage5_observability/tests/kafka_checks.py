"""What stage 4 documents about its topics and events, and small helpers the stage-4 checks share.

The names below are the stage's documented contract (the topics it declares, the consumer group,
the event format and its headers, the dead-letter headers), not the internals of any implementation.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timezone

from confluent_kafka import Producer
from sqlalchemy import text
from tenacity import Retrying, stop_after_delay, wait_fixed

from common.ids import uuid7
from common.service import package_pythonpath
from common.testing.contract import assert_contract
from common.timeutil import rfc3339

TASK_TOPIC = "tasks.v1"
DLQ_TOPIC = "tasks.v1.dlq"
GROUP = "task-persister"
DLQ_HEADERS = ("dlq-error", "dlq-original-topic", "dlq-original-partition", "dlq-original-offset", "dlq-attempts")
TASK_FIELDS = ("id", "type", "payload", "priority", "status", "created_at", "updated_at")
DRAIN_SECONDS = 30


def accept(client, account, body: dict | None = None, *, key: str | None = None) -> dict:
    """POST a task, expect 202 with the PENDING task and its Location; return the task."""
    headers = {**account.headers, **({"Idempotency-Key": key} if key is not None else {})}
    response = client.post("/api/v1/tasks", json=body or {"type": "email.send", "payload": {"to": "a@b.c"}},
                           headers=headers)
    assert response.status_code == 202, f"create answered {response.status_code}: {response.text[:300]}"
    task = assert_contract(response, "POST", "/api/v1/tasks")
    assert response.headers["Location"] == f"/api/v1/tasks/{task['id']}"
    assert task["status"] == "PENDING"
    return task


def problem_code(response) -> str | None:
    """The `code` of a problem-details body, or None."""
    try:
        return response.json().get("code")
    except ValueError:
        return None


def event(message) -> dict:
    """A message's value as JSON."""
    return json.loads(message.value)


def messages_for(broker, key: str, *, start: dict[int, int] | None = None, topic: str = TASK_TOPIC) -> list:
    """The messages of `topic` (from `start`) whose key is `key`, in offset order."""
    return [m for m in broker.read(topic, start=start) if m.key == key.encode()]


def messages_of_user(broker, user_id: str, *, start: dict[int, int] | None = None) -> list:
    """The task-topic messages (from `start`) whose event belongs to `user_id`; undecodable ones are skipped."""
    found = []
    for message in broker.read(TASK_TOPIC, start=start):
        try:
            owner = event(message).get("task", {}).get("user_id")
        except (ValueError, TypeError, AttributeError):
            continue
        if owner == user_id:
            found.append(message)
    return found


def consuming(service) -> None:
    """Fail at once, rather than after a drain's timeout, when the service under test runs no consumer."""
    assert service.package is None or service.package.consumer_module, \
        f"{service.package.name} has no consumer (consumer/__main__.py): nothing lands messages from {TASK_TOPIC}"


def drain(service, seconds: float = DRAIN_SECONDS) -> None:
    """Wait until the service's consumer group has committed every task message now on the topic."""
    consuming(service)
    service.broker.wait_drained(GROUP, TASK_TOPIC, seconds=seconds)


def task_row(database, task_id: str) -> dict | None:
    """The tasks row of `task_id` as a dict (id and user_id as UUID text), or None."""
    with database.engine.connect() as conn:
        row = conn.execute(text("SELECT id, user_id, type, payload, priority, status, created_at, updated_at "
                                "FROM tasks WHERE id = :id"), {"id": uuid.UUID(task_id).bytes}).mappings().first()
    if row is None:
        return None
    found = dict(row)
    found["id"], found["user_id"] = str(uuid.UUID(bytes=bytes(row["id"]))), str(uuid.UUID(bytes=bytes(row["user_id"])))
    if isinstance(found["payload"], (str, bytes)):
        found["payload"] = json.loads(found["payload"])
    return found


def user_task_ids(database, user_id: str) -> list[str]:
    """Every task id in the tasks table owned by `user_id` (duplicates kept, were there any)."""
    with database.engine.connect() as conn:
        rows = conn.execute(text("SELECT id FROM tasks WHERE user_id = :user"), {"user": uuid.UUID(user_id).bytes})
        return [str(uuid.UUID(bytes=bytes(r[0]))) for r in rows]


def wait_row(database, task_id: str, *, status: str | None = None, seconds: float = DRAIN_SECONDS) -> dict:
    """Poll until the task's row exists (in `status`, if given); return it."""
    for attempt in Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(0.1), reraise=True):
        with attempt:
            row = task_row(database, task_id)
            assert row is not None, f"task {task_id} never landed in the database"
            assert status is None or row["status"] == status, f"task {task_id} is {row['status']}, not {status}"
    return row


def now_text() -> str:
    return rfc3339(datetime.now(timezone.utc))


def created_event(user_id: str, **fields) -> dict:
    """A valid task.created event in the documented format, for a task id made here."""
    at = now_text()
    task = {"id": str(uuid7()), "user_id": user_id, "type": "email.send", "payload": {"to": "a@b.c"},
            "priority": 5, "status": "PENDING", "created_at": at, "updated_at": at, **fields}
    return {"event": "task.created", "version": 1, "occurred_at": at, "task": task, "idempotency": None}


def canceled_event(user_id: str, task_id: str) -> dict:
    """A valid task.canceled event in the documented format."""
    at = now_text()
    return {"event": "task.canceled", "version": 1, "occurred_at": at,
            "task": {"id": task_id, "user_id": user_id, "status": "CANCELED", "updated_at": at}}


def event_headers(event_type: str) -> list[tuple[str, bytes]]:
    return [("event-type", event_type.encode()), ("content-type", b"application/json"),
            ("request-id", f"test-{uuid.uuid4().hex[:12]}".encode())]


def publish(bootstrap: str, records: list[tuple], *, topic: str = TASK_TOPIC) -> list[tuple[int, int]]:
    """Produce (key, value, headers[, partition]) records in order, as a foreign producer would; return
    each one's (partition, offset) once the broker acknowledged it."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "max.in.flight.requests.per.connection": 1, "log_level": 3})
    placed: list = [None] * len(records)

    def delivered(index: int):
        def report(error, message) -> None:
            placed[index] = error or (message.partition(), message.offset())
        return report

    for index, (key, value, headers, *partition) in enumerate(records):
        extra = {"partition": partition[0]} if partition else {}
        producer.produce(topic, key=key, value=value, headers=headers, on_delivery=delivered(index), **extra)
    assert producer.flush(15) == 0, "the test's own producer could not deliver"
    assert all(isinstance(p, tuple) for p in placed), f"delivery failed: {placed}"
    return placed


def run_dlq(service, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the stage's DLQ tool (`python -m <package>.consumer.dlq ...`) with the service's settings."""
    assert service.package is not None, "needs the implementation, not a TARGET"
    env = {**os.environ, **service.env, "PYTHONPATH": package_pythonpath(service.package)}
    return subprocess.run([sys.executable, "-m", f"{service.package.name}.consumer.dlq", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=service.package.path.parent)
