"""Dead letters: a message that cannot land goes to the DLQ topic as it was, with the reason in its headers."""
from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from ..shared.kafka_log import QuietLog

ERROR, TOPIC, PARTITION, OFFSET, ATTEMPTS = ("dlq-error", "dlq-original-topic", "dlq-original-partition",
                                             "dlq-original-offset", "dlq-attempts")
HANDLED, ACTION, REPLAYED_FROM = "dlq-handled", "dlq-action", "dlq-replayed-from"
DLQ_HEADERS = frozenset({ERROR, TOPIC, PARTITION, OFFSET, ATTEMPTS, HANDLED, ACTION})
Headers = list[tuple[str, bytes]]
Record = tuple[bytes | None, bytes | None, Headers]  # key, value, headers


@dataclass(frozen=True)
class Letter:
    message: Message
    error: str
    attempts: int


class DeliveryFailed(Exception):
    """The broker did not acknowledge every record (a dead letter's offset must then not be committed)."""


def letter_headers(letter: Letter) -> Headers:
    """The original headers (less any old DLQ ones), then where the message came from and why it failed."""
    message = letter.message
    kept = [(name, value) for name, value in message.headers() or [] if name not in DLQ_HEADERS]
    # One line: a header is read by tools that split on newlines.
    error = " ".join(letter.error.split())[:1000] or "unknown error"
    return kept + [(ERROR, error.encode()), (TOPIC, message.topic().encode()),
                   (PARTITION, str(message.partition()).encode()), (OFFSET, str(message.offset()).encode()),
                   (ATTEMPTS, str(letter.attempts).encode())]


def producer(bootstrap: str, *, timeout_ms: int) -> Producer:
    """A producer whose acknowledged write survives a broker failure, and is written once."""
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                     "message.timeout.ms": timeout_ms, "linger.ms": 0,
                     "reconnect.backoff.ms": 500, "reconnect.backoff.max.ms": 2_000, "log_level": 3},
                    logger=QuietLog())


def send(out: Producer, topic: str, letters: list[Letter], *, timeout: float) -> None:
    """Publish every letter and wait for each acknowledgement; raise DeliveryFailed if any is missing."""
    deliver(out, topic, [(letter.message.key(), letter.message.value(), letter_headers(letter)) for letter in letters],
            timeout=timeout)


def deliver(out: Producer, topic: str, records: list[Record], *, timeout: float) -> None:
    """Publish every record and wait for each acknowledgement; raise DeliveryFailed if any is missing."""
    failures: list[KafkaError] = []

    def report(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    for key, value, headers in records:
        out.produce(topic, key=key, value=value, headers=headers, on_delivery=report)
    pending = out.flush(timeout)
    if failures or pending:
        raise DeliveryFailed(f"{len(failures)} records refused, {pending} unacknowledged: "
                             f"{failures[0] if failures else 'timed out'}")
