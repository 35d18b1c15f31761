"""Kafka, the task log: one idempotent producer per app, and a publish that waits for the broker's acknowledgement.

Request threads call `publish()` and block on an Event of their own; one thread per producer calls
`poll()`, which runs the delivery callbacks that set those Events. Messages of concurrent requests
therefore share batches (linger.ms): nobody flushes for one message. `close()` ends that thread and
flushes what is still queued.
"""
from __future__ import annotations

import math
import threading
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from loguru import logger
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from common.errors import ServiceUnavailable

from ...shared.kafka_log import QuietLog
from ...shared.tracing import child_span, with_trace_context
from ..metrics import ProducerMetrics

Headers = list[tuple[str, bytes]]
# Kept short: readiness asks often, and a broker that takes longer than this is as good as down.
PING_TIMEOUT_SECONDS = 1.0
# Extra wait past message.timeout.ms: librdkafka scans its queues for expired messages about once a second.
REPORT_GRACE_SECONDS = 1.5


class BrokerUnavailable(ServiceUnavailable):
    detail = "The task broker did not acknowledge in time; retry later (with the same Idempotency-Key to be safe)."


class _Delivery:
    """One message's delivery report, handed from the poll thread to the waiting request thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: KafkaError | None = None
        self.placed: tuple[int, int] | None = None

    def report(self, error: KafkaError | None, message) -> None:
        if error is None:
            self.placed = (message.partition(), message.offset())
        self.error = error
        self.done.set()


class Broker:
    """An app's producer, bound to the task topic, built by its runtime: in each gunicorn worker, after the fork.

    librdkafka runs threads of its own, which do not survive fork(): a producer made in the master
    would be dead in every worker. create_app() runs in the worker, so the producer is made there.
    """

    def __init__(self, *, bootstrap: str, topic: str, linger_ms: int, timeout_ms: int, attempts: int,
                 metrics: ProducerMetrics, tracer: Tracer) -> None:
        self.topic, self.timeout_ms, self.attempts = topic, timeout_ms, attempts
        self.metrics, self.tracer = metrics, tracer
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "acks": "all",  # acknowledged = written to every in-sync replica, not just the leader's memory
            "enable.idempotence": True,  # librdkafka's own retries can neither duplicate nor reorder a message
            "linger.ms": linger_ms,
            "message.timeout.ms": timeout_ms,  # one attempt's deadline: the delivery report comes by then
            # A broker that is away is retried every 0.5-2 s, not every 0.1 s: recovery within 2 s of
            # its return; QuietLog keeps one "Connection refused" line a minute of all those retries.
            "reconnect.backoff.ms": 500, "reconnect.backoff.max.ms": 2_000,
            "log_level": 3,
        }, logger=QuietLog())
        self._stopping = threading.Event()
        self._reports = threading.Thread(target=self._poll, name="broker-delivery-reports", daemon=True)
        self._reports.start()
        logger.info("broker configured", bootstrap=bootstrap, timeout_ms=timeout_ms, attempts=attempts)

    def close(self) -> None:
        """Stop the delivery-report thread, then deliver what is queued (a request may still wait for it)."""
        self._stopping.set()
        self._reports.join()
        left = self.producer.flush(self.timeout_ms / 1000)
        if left:
            logger.warning("broker closed with messages unacknowledged", count=left)

    def _poll(self) -> None:
        while not self._stopping.is_set():
            try:
                self.producer.poll(0.1)
            except Exception:  # noqa: BLE001 - a callback's failure must not end delivery reporting
                logger.exception("broker poll failed")
            self.metrics.producer_queue.set(len(self.producer))

    def publish(self, *, key: str, value: bytes, headers: Headers) -> tuple[int, int]:
        """Write one message to the task topic and wait for its acknowledgement; return (partition, offset).

        Raises BrokerUnavailable (503 with Retry-After) after PUBLISH_ATTEMPTS attempts without one.
        In a kept trace, the publish is a span of its own, and the message carries it in its headers: the
        consumer's span continues this trace. Its duration, to the ack or the last failed attempt, is a histogram.
        """
        started = time.perf_counter()
        with child_span(self.tracer, f"{self.topic} publish", kind=SpanKind.PRODUCER, attributes={
                "messaging.system": "kafka", "messaging.destination.name": self.topic,
                "messaging.operation.type": "send", "messaging.kafka.message.key": key}) as span:
            try:
                partition, offset = self._attempts(key=key, value=value, headers=with_trace_context(headers))
            except BrokerUnavailable:
                self.metrics.publish_duration["failed"].observe(time.perf_counter() - started)
                span.set_status(Status(StatusCode.ERROR, "not acknowledged"))
                raise
            self.metrics.publish_duration["acked"].observe(time.perf_counter() - started)
            span.set_attributes({"messaging.destination.partition.id": str(partition), "messaging.kafka.offset": offset})
            return partition, offset

    def _attempts(self, *, key: str, value: bytes, headers: Headers) -> tuple[int, int]:
        last = "no attempt"
        for attempt in range(1, self.attempts + 1):
            delivery = _Delivery()
            try:
                self.producer.produce(self.topic, key=key.encode(), value=value, headers=headers,
                                      on_delivery=delivery.report)
            except BufferError:  # the local queue is full: the broker has been away for a while
                last = "local queue full"
                self.metrics.publish_errors.labels("queue_full").inc()
                break
            except KafkaException as exc:
                last = str(exc.args[0]) if exc.args else "produce refused"
                self.metrics.publish_errors.labels("refused").inc()
                break
            if not delivery.done.wait(self.timeout_ms / 1000 + REPORT_GRACE_SECONDS):
                # No report at all: the message may still be queued, so another attempt could
                # duplicate it; stop here (the consumer's idempotent landing would absorb it anyway).
                last = "no delivery report"
                self.metrics.publish_errors.labels("no_report").inc()
                break
            if delivery.error is None:
                return delivery.placed  # type: ignore[return-value]
            # A timed-out message (_MSG_TIMED_OUT) was either never sent (no broker: down, unreachable,
            # no leader) or sent and not acknowledged in time (a slow broker): librdkafka knows which
            # ("possibly persisted"), but the Python client does not say. So a 503 promises only that
            # nothing was acknowledged. Every attempt, and a keyed retry after the 503
            # (services/idempotency.py), publishes the same task id, which the consumer lands at most once.
            last = delivery.error.str()
            self.metrics.publish_errors.labels(delivery.error.name().strip("_").lower()).inc()
            logger.warning("publish attempt failed", topic=self.topic, key=key, attempt=attempt, error=last)
            if delivery.error.fatal():
                break
        logger.warning("publish failed", topic=self.topic, key=key, error=last)
        raise BrokerUnavailable(retry_after=max(1, math.ceil(self.timeout_ms / 1000)))

    def ping(self) -> None:
        """Raise unless a broker answers a metadata request for the task topic in time."""
        topic = self.topic
        started = time.monotonic()
        metadata = self.producer.list_topics(topic, timeout=PING_TIMEOUT_SECONDS)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not metadata.brokers:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, f"topic {topic} not served"))
        if time.monotonic() - started > PING_TIMEOUT_SECONDS:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "metadata too slow"))

