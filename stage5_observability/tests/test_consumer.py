"""The consumer lands every accepted task exactly once: through a crash mid-stream, and when a message comes again."""
from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from common.service import ConsumerProcess, free_port

from .kafka_checks import DLQ_TOPIC, DRAIN_SECONDS, TASK_TOPIC, accept, created_event, drain, event_headers, \
    messages_for, publish, task_row, user_task_ids, wait_row

TOTAL, KILL_AT, RESTART_AT, THREADS = 2000, 600, 1200, 16


class Stream:
    """Creates tasks from a pool of keep-alive connections and records every answer."""

    def __init__(self, service, account) -> None:
        self.service, self.headers = service, account.headers
        self.accepted: list[str] = []
        self.refused: list[tuple[int, str]] = []
        self._lock, self._local, self._clients = threading.Lock(), threading.local(), []

    def create(self, n: int) -> None:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.service.client()
            with self._lock:
                self._clients.append(client)
        answer = client.post("/api/v1/tasks", json={"type": "stream.item", "payload": {"n": n}}, headers=self.headers)
        with self._lock:
            if answer.status_code == 202:
                self.accepted.append(answer.json()["id"])
            else:
                self.refused.append((answer.status_code, answer.text[:200]))

    def wait_accepted(self, count: int) -> None:
        for attempt in Retrying(stop=stop_after_delay(30), wait=wait_fixed(0.005), reraise=True):
            with attempt:
                assert len(self.accepted) + len(self.refused) >= count, f"{len(self.accepted)} accepted so far"

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.mark.check("S4-AC6")
def test_the_consumer_killed_mid_stream_and_restarted_lands_every_accepted_task_exactly_once(launch, alice,
                                                                                                  database):
    service = launch(name="consumer-crash")
    with service.client() as client:  # the consumer is up and landing before the stream starts
        first = accept(client, alice, {"type": "stream.item", "payload": {"n": -1}})
    wait_row(database, first["id"])
    stream = Stream(service, alice)
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            done = [pool.submit(stream.create, n) for n in range(TOTAL)]
            stream.wait_accepted(KILL_AT)
            service.kill_consumer()  # SIGKILL: whatever batch it held is neither finished nor committed
            stream.wait_accepted(RESTART_AT)
            service.start_consumer()
            for future in done:
                future.result()
    finally:
        stream.close()
    assert not stream.refused, f"{len(stream.refused)} creates refused, e.g. {stream.refused[0]}"
    accepted = [first["id"], *stream.accepted]
    assert len(set(accepted)) == TOTAL + 1

    drain(service, seconds=60)
    landed = user_task_ids(database, alice.id)
    missing, extra = set(accepted) - set(landed), set(landed) - set(accepted)
    assert not missing, f"{len(missing)} accepted tasks never landed, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} tasks landed that were never accepted, e.g. {sorted(extra)[:3]}"
    assert len(landed) == len(accepted), f"{len(landed)} rows for {len(accepted)} accepted tasks"


def redeliver(broker, messages) -> None:
    """Publish the same messages again (key, value, headers, partition): what an at-least-once replay delivers."""
    publish(broker.bootstrap, [(m.key, m.value, list(m.headers.items()), m.partition) for m in messages])


@pytest.mark.check("S4-AC9")
def test_a_message_delivered_again_changes_nothing_in_the_database(api, service, alice, broker, database):
    start = broker.end_offsets(TASK_TOPIC)
    canceled, pending = accept(api, alice), accept(api, alice, {"type": "kept.pending", "payload": {"k": 1}})
    drain(service)
    answer = api.post(f"/api/v1/tasks/{canceled['id']}/cancel", headers=alice.headers)
    assert answer.status_code == 202, f"cancel answered {answer.status_code}: {answer.text[:200]}"
    drain(service)
    before = {"canceled": wait_row(database, canceled["id"], status="CANCELED"),
              "pending": wait_row(database, pending["id"], status="PENDING")}
    history = messages_for(broker, canceled["id"], start=start)
    assert [m.headers.get("event-type") for m in history] == [b"task.created", b"task.canceled"]
    create_event, cancel_event = history
    dead_letters = broker.end_offsets(DLQ_TOPIC)

    # The create of a task canceled since (alone, so no later cancel can mend an overwrite), and a landed create.
    redeliver(broker, [create_event, *messages_for(broker, pending["id"], start=start)])
    drain(service)
    assert {"canceled": task_row(database, canceled["id"]), "pending": task_row(database, pending["id"])} == before, \
        "a create delivered again changed a landed row: landing is not idempotent"
    redeliver(broker, [cancel_event])
    drain(service)
    assert task_row(database, canceled["id"]) == before["canceled"], "the cancel delivered again changed the row"
    assert sorted(user_task_ids(database, alice.id)) == sorted([canceled["id"], pending["id"]])
    assert broker.end_offsets(DLQ_TOPIC) == dead_letters, "a message delivered again was dead-lettered, not landed"


@pytest.mark.check("S4-AC12")
def test_the_consumer_lands_without_the_producers_settings(service, broker, database, alice, tmp_path):
    """No REDIS_URL and no JWT_SECRET: a consumer of its own group and topic still lands what it reads."""
    topic = f"own-{uuid.uuid4().hex[:8]}"
    env = {**service.env, "REDIS_URL": None, "JWT_SECRET": None, "TASK_TOPIC": topic,
           "CONSUMER_GROUP": f"own-{uuid.uuid4().hex[:8]}", "CONSUMER_METRICS_PORT": str(free_port())}
    output = tmp_path / "consumer.log"
    with output.open("w", encoding="utf-8") as sink:
        consumer = ConsumerProcess(service.package, env=env, output=sink).start()
    try:
        created = created_event(alice.id)
        publish(broker.bootstrap, [(created["task"]["id"].encode(), json.dumps(created).encode(),
                                    event_headers("task.created"))], topic=topic)
        for attempt in Retrying(stop=stop_after_delay(DRAIN_SECONDS), wait=wait_fixed(0.1), reraise=True):
            with attempt:
                assert consumer.process.poll() is None, f"the consumer stopped: {output.read_text()[-1000:]}"
                assert task_row(database, created["task"]["id"]), "the event has not landed yet"
    finally:
        code = consumer.stop()
    assert code == 0, f"exit code {code} after SIGTERM: {output.read_text()[-1000:]}"
