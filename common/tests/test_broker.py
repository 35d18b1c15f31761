"""The embedded broker: a holder process with the stage's topics, a drill interface, and offsets to wait on."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from common.backends import EmbeddedBroker
from common.broker import BrokerControl, committed_offsets, end_offsets, read_topics
from common.stages import REPO_ROOT
from common.testing.harness import Broker

TOPICS_TOML = """
[topics."tasks.v1"]
partitions = 6

[topics."tasks.v1.dlq"]
partitions = 1
"""


@pytest.fixture(scope="module")
def holder(tmp_path_factory):
    """One mock-cluster holder serving two declared topics."""
    folder = tmp_path_factory.mktemp("broker")
    (folder / "topics.toml").write_text(TOPICS_TOML, encoding="utf-8")
    broker = EmbeddedBroker(topics=folder / "topics.toml", state=folder / "broker.json").start()
    yield broker
    broker.stop()


def publish(bootstrap: str, topic: str, key: bytes, *, timeout_ms: int = 10_000) -> KafkaError | None:
    """Publish one message as the producer does (acks=all, idempotent); return the delivery error, if any."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": timeout_ms, "log_level": 0})
    outcome: list[KafkaError | None] = []
    producer.produce(topic, key=key, value=b"{}", on_delivery=lambda error, message: outcome.append(error))
    producer.flush(timeout_ms / 1000 + 5)
    return outcome[0]


def test_the_holder_serves_the_stages_topics_with_their_partitions(holder):
    declared = read_topics(holder.topics)
    assert declared == {"tasks.v1": 6, "tasks.v1.dlq": 1}
    for topic, partitions in declared.items():
        assert len(end_offsets(holder.url, topic)) == partitions


def test_a_published_message_moves_the_end_offset_and_a_commit_shows_in_the_group(holder):
    before = sum(end_offsets(holder.url, "tasks.v1").values())
    assert publish(holder.url, "tasks.v1", b"k-1") is None
    assert sum(end_offsets(holder.url, "tasks.v1").values()) == before + 1
    consumer = Consumer({"bootstrap.servers": holder.url, "group.id": "test-group", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "log_level": 0})
    consumer.subscribe(["tasks.v1"])
    record = None
    for _ in range(100):
        record = consumer.poll(0.2)
        if record is not None and not record.error():
            break
    assert record is not None and not record.error()
    consumer.commit(record, asynchronous=False)
    consumer.close()
    assert committed_offsets(holder.url, "test-group", "tasks.v1")[record.partition()] == record.offset() + 1


def test_a_drill_takes_the_broker_down_and_back_without_a_restart(holder):
    broker = Broker(holder.url, BrokerControl(holder.control))
    with broker.outage():
        assert BrokerControl(holder.control).status()["down"] is True
        error = publish(holder.url, "tasks.v1", b"k-down", timeout_ms=1500)
        assert error is not None and error.code() == KafkaError._MSG_TIMED_OUT
    assert publish(holder.url, "tasks.v1", b"k-up") is None


def test_the_command_line_drives_the_holder_of_a_state_file(holder):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "common.broker", "--state", str(holder.state), *args],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)

    assert json.loads(cli("rtt", "50").stdout)["rtt_ms"] == 50
    assert json.loads(cli("rtt", "0").stdout)["rtt_ms"] == 0
    status = json.loads(cli("status").stdout)
    assert status["bootstrap"] == holder.url and status["durable"] is False
    lines = [json.loads(line) for line in cli("offsets", "--group", "test-group").stdout.splitlines()]
    assert {line["topic"] for line in lines} == {"tasks.v1", "tasks.v1.dlq"}
    assert all("committed" in line for line in lines)
    before = sum(end_offsets(holder.url, "tasks.v1.dlq").values())
    sent = cli("send", "tasks.v1.dlq", "not an event", "--key", "poison")
    assert sent.returncode == 0 and sent.stdout.startswith("acknowledged"), sent.stdout + sent.stderr
    assert sum(end_offsets(holder.url, "tasks.v1.dlq").values()) == before + 1, "send published nothing"


def test_without_a_holder_the_command_line_says_what_to_do(tmp_path):
    result = subprocess.run([sys.executable, "-m", "common.broker", "--state", str(tmp_path / "none.json"), "down"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "make stage4" in result.stderr
