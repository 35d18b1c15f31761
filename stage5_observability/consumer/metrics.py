"""The consumer's metrics, served on a port of its own (CONSUMER_METRICS_PORT): what it landed and how late,
how far behind the topic it is, and how many records wait in the dead-letter topic."""
from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server

# Seconds from the broker's append to the row's commit, around slo.yaml's consumer p99 of 5 s.
DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_EVERY_SECONDS = 1.0  # from the client's cached watermarks: no broker round trip
DLQ_EVERY_SECONDS = 10.0  # a metadata and watermark request to the broker each time
DLQ_TIMEOUT_SECONDS = 1.0


class ConsumerMetrics:
    """Every series the consumer exports, in a registry of its own (with the process's CPU and memory)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        self.messages = Counter("consumer_messages_total", "Task-topic messages handled, by outcome: landed "
                                "(in the database) or dead_lettered", ("outcome",), registry=registry)
        self.batches = Histogram("consumer_batch_duration_seconds", "One batch: decode, land, dead-letter",
                                 buckets=BATCH_BUCKETS, registry=registry)
        self.landing_delay = Histogram("task_landing_delay_seconds", "From the broker's append of a message "
                                       "(its timestamp) to the commit of its row", buckets=DELAY_BUCKETS,
                                       registry=registry)
        self.lag = Gauge("kafka_consumer_lag_messages", "Messages on a partition this consumer has not reached",
                         ("topic", "partition"), registry=registry)
        self.dlq_records = Gauge("dlq_records", "Records in the dead-letter topic: letters, and the markers of "
                                 "letters replayed or discarded", registry=registry)
        for outcome in ("landed", "dead_lettered"):  # 0 from the start, so that rate() sees the first one
            self.messages.labels(outcome)
        self._lag_due = self._dlq_due = 0.0

    def serve(self, *, host: str, port: int):
        """Serve GET /metrics on host:port in a thread; the returned server's shutdown() stops it."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return server

    def follow(self, consumer: Consumer, *, dlq_topic: str) -> None:
        """Between batches: the lag of each assigned partition every second, the DLQ's size every ten."""
        now = time.monotonic()
        if now >= self._lag_due:
            self._lag_due = now + LAG_EVERY_SECONDS
            for assigned in consumer.position(consumer.assignment()):
                low, high = consumer.get_watermark_offsets(assigned, cached=True)
                if high >= 0:  # known once a fetch has answered
                    reached = assigned.offset if assigned.offset >= 0 else low
                    self.lag.labels(assigned.topic, str(assigned.partition)).set(max(0, high - reached))
        if now >= self._dlq_due:
            self._dlq_due = now + DLQ_EVERY_SECONDS
            try:
                self.dlq_records.set(_records(consumer, dlq_topic))
            except KafkaException:
                pass  # the broker is away: keep the last figure, try again next time


def _records(consumer: Consumer, topic: str) -> int:
    partitions = consumer.list_topics(topic, timeout=DLQ_TIMEOUT_SECONDS).topics[topic].partitions
    total = 0
    for partition in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=DLQ_TIMEOUT_SECONDS)
        total += high - low
    return total
