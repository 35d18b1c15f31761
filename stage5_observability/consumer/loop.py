"""The consumer's loop: take a batch, hand it to the handler, commit its offsets; stop cleanly on SIGTERM."""
from __future__ import annotations

import signal
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from loguru import logger
from prometheus_client import disable_created_metrics

from common.connections import database_engine

from ..shared import logs
from ..shared.database import engine_options
from ..shared.kafka_log import QuietLog
from ..shared.tracing import Tracing, watch_statements
from . import dead_letters
from .config import ConsumerSettings, settings_or_exit
from .handler import BatchHandler, Stopping
from .metrics import ConsumerMetrics

IDLE_POLL_SECONDS = 0.5  # how long one wait for a first message blocks: bounds how late SIGTERM is noticed
READY_SECONDS = 0.01  # after the first message, a round that brings nothing in this long ends the batch


def kafka_consumer(settings: ConsumerSettings) -> Consumer:
    """A group member that commits only what it landed (no auto-commit) and reads a new group from the start."""
    return Consumer({
        "bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": settings.consumer_group,
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        # An idle fetch answers within 50 ms of a message's arrival, so a lone create lands at once.
        "fetch.wait.max.ms": 50,
        # A member killed without leaving holds its partitions this long before the group moves them on.
        "session.timeout.ms": 6_000, "heartbeat.interval.ms": 1_000,
        # Retry an absent broker every 0.5-2 s (as the producer does), not every 0.1 s with a log line each time.
        "reconnect.backoff.ms": 500, "reconnect.backoff.max.ms": 2_000,
        "log_level": 3,
    }, logger=QuietLog())


def next_batch(consumer: Consumer, *, max_size: int, wait_ms: int, stopping: threading.Event) -> list[Message]:
    """Block for a first message, then take what else is ready: up to `max_size`, within `wait_ms`."""
    batch: list[Message] = []
    while not batch and not stopping.is_set():
        batch = consumer.consume(1, timeout=IDLE_POLL_SECONDS)
    deadline = time.monotonic() + wait_ms / 1000
    while batch and len(batch) < max_size:
        left = deadline - time.monotonic()
        # A burst keeps the queue full, so the batch fills; a lone message ends it after one short round.
        more = consumer.consume(max_size - len(batch), timeout=min(left, READY_SECONDS)) if left > 0 else []
        if not more:
            break
        batch += more
    return [m for m in batch if _is_message(m)]


def _is_message(message: Message) -> bool:
    error = message.error()
    if error is None:
        return True
    if error.code() != KafkaError._PARTITION_EOF:
        logger.warning("consumer error", error=str(error))
    return False


def commit(consumer: Consumer, batch: list[Message]) -> None:
    """Commit, synchronously, the offset after the last message of each partition in the batch."""
    ends: dict[tuple[str, int], int] = {}
    for message in batch:
        key = (message.topic(), message.partition())
        ends[key] = max(ends.get(key, -1), message.offset() + 1)
    try:
        consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in ends.items()], asynchronous=False)
    except KafkaException as exc:
        # A rebalance moved a partition away: its next owner replays from the last commit, which changes nothing.
        logger.warning("offset commit refused; the batch will be delivered again", error=str(exc))


def run(settings: ConsumerSettings, stopping: threading.Event) -> None:
    """Consume until `stopping` is set; the batch in hand is finished and committed first."""
    metrics = ConsumerMetrics()
    server = metrics.serve(host=settings.consumer_metrics_host, port=settings.consumer_metrics_port)
    tracing = Tracing(settings, service="consumer")
    engine = database_engine(settings.database_url, **engine_options(settings.database_url))
    watch_statements(engine, tracing.tracer)
    out = dead_letters.producer(settings.kafka_bootstrap_servers, timeout_ms=settings.publish_timeout_ms)
    handler = BatchHandler(engine=engine, out=out, dlq_topic=settings.dlq_topic,
                           max_attempts=settings.consumer_max_attempts, stopping=stopping,
                           metrics=metrics, tracer=tracing.tracer)
    consumer = kafka_consumer(settings)
    consumer.subscribe([settings.task_topic])
    logger.info("consumer started", topic=settings.task_topic, group=settings.consumer_group,
                batch_max=settings.consumer_batch_max, batch_wait_ms=settings.consumer_batch_wait_ms,
                metrics=f"http://{settings.consumer_metrics_host}:{settings.consumer_metrics_port}/metrics")
    try:
        while not stopping.is_set():
            metrics.follow(consumer, dlq_topic=settings.dlq_topic)
            batch = next_batch(consumer, max_size=settings.consumer_batch_max,
                               wait_ms=settings.consumer_batch_wait_ms, stopping=stopping)
            if not batch:
                continue
            started = time.perf_counter()
            outcome = handler.handle(batch)
            commit(consumer, batch)  # only now: the database commit (and any dead letter's ack) came first
            elapsed = time.perf_counter() - started
            metrics.batches.observe(elapsed)
            logger.info("batch", count=len(batch), landed=outcome.landed, dead_lettered=outcome.dead_lettered,
                        ms=round(elapsed * 1000, 1))
    except Stopping:
        logger.warning("stopped while waiting out an outage; the batch in hand will be delivered again")
    finally:
        consumer.close()  # leaves the group now, so its partitions move on without a session timeout
        out.flush(5)
        engine.dispose()
        tracing.close()
        server.shutdown()
        logger.info("consumer stopped")


def main() -> int:
    """`python -m <stage>.consumer`: settings, logging, signals, then the loop."""
    settings = settings_or_exit()
    logs.configure(settings, name="consumer")
    # No `<counter>_created` series: a start time per counter is for OpenMetrics, and doubles the page here.
    disable_created_metrics()
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    run(settings, stopping)
    return 0
