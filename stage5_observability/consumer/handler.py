"""One batch of messages: decode, land in one transaction, dead-letter what cannot land, and say what happened.

Retry policy (numbers in the module constants): a transient database error (unreachable, locked,
pool exhausted) is retried with exponential backoff, CONSUMER_MAX_ATTEMPTS times per landing. If it
still fails while the database answers a ping, the failure belongs to the messages: the batch is landed
one message at a time and only the one that fails is dead-lettered. If the database does not answer,
nothing is dead-lettered: the handler waits for it (an outage must not empty the stream into the DLQ).
Any other database error (a constraint, bad data) is not retried: the batch goes straight to one at a time.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from confluent_kafka import Message, Producer
from loguru import logger
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from sqlalchemy import Engine, text
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_never, wait_exponential

from common.connections import first_line

from ..shared.database import OUTAGES
from ..shared.events import Event, Poison, decode
from ..shared.tracing import trace_context
from . import dead_letters, persist
from .dead_letters import Letter
from .metrics import ConsumerMetrics

BACKOFF = wait_exponential(multiplier=0.1, max=5)  # 0.1, 0.2, 0.4, 0.8, ... s, at most 5 s between attempts
DLQ_ACK_SECONDS = 10

T = TypeVar("T")


class Stopping(Exception):
    """SIGTERM arrived while the handler was waiting out an outage: leave the batch uncommitted, to be replayed."""


@dataclass(frozen=True)
class Outcome:
    landed: int
    dead_lettered: int


class BatchHandler:
    """Lands batches in `engine`, dead-letters to `dlq_topic` through `out`; `stopping` cuts its waits short."""

    def __init__(self, *, engine: Engine, out: Producer, dlq_topic: str, max_attempts: int,
                 stopping: threading.Event, metrics: ConsumerMetrics, tracer: Tracer) -> None:
        self.engine, self.out, self.dlq_topic = engine, out, dlq_topic
        self.max_attempts, self.stopping = max_attempts, stopping
        self.metrics, self.tracer = metrics, tracer

    def handle(self, messages: list[Message]) -> Outcome:
        """Land or dead-letter every message; return only once each is in the database or in the DLQ.

        Each message gets a span that continues the trace of the request that published it; the batch's
        own span (its statements, its dead letters) links to them, since one batch serves many traces.
        """
        spans = [self.tracer.start_span(f"{m.topic()} process", context=trace_context(m.headers()),
                                        kind=SpanKind.CONSUMER, attributes=_attributes(m)) for m in messages]
        links = [Link(span.get_span_context()) for span in spans]
        try:
            with self.tracer.start_as_current_span("land batch", links=links, attributes={"batch.size": len(messages)}):
                letters = self._land_or_dead_letter(messages)
        except BaseException:  # Stopping: the batch will be delivered again, and traced again
            for span in spans:
                span.end()
            raise
        self._report(messages, spans, letters)
        return Outcome(landed=len(messages) - len(letters), dead_lettered=len(letters))

    def _land_or_dead_letter(self, messages: list[Message]) -> list[Letter]:
        decoded: list[tuple[Message, Event]] = []
        letters: list[Letter] = []
        for message in messages:
            try:
                decoded.append((message, decode(message.key(), message.value())))
            except Poison as exc:
                letters.append(Letter(message, str(exc), 1))
        letters += self._land(decoded)
        letters.sort(key=lambda letter: (letter.message.partition(), letter.message.offset()))
        if letters:
            self._retry_forever(lambda: dead_letters.send(self.out, self.dlq_topic, letters, timeout=DLQ_ACK_SECONDS),
                                (dead_letters.DeliveryFailed,), "dead letters not acknowledged")
        return letters

    def _report(self, messages: list[Message], spans: list[Span], letters: list[Letter]) -> None:
        """One line per message, inside its span (so with its request's trace id); the counters; end the spans."""
        dead = {(letter.message.partition(), letter.message.offset()): letter for letter in letters}
        now_ms = time.time() * 1000
        for message, span in zip(messages, spans):
            with trace.use_span(span, end_on_exit=True):
                key = (message.key() or b"").decode("utf-8", "replace")
                letter = dead.get((message.partition(), message.offset()))
                if letter:
                    span.set_status(Status(StatusCode.ERROR, letter.error))
                    self.metrics.messages.labels("dead_lettered").inc()
                    logger.warning("dead-lettered", key=key, partition=message.partition(), offset=message.offset(),
                                   error=letter.error)
                    continue
                self.metrics.messages.labels("landed").inc()
                _, appended_ms = message.timestamp()
                if appended_ms > 0:
                    self.metrics.landing_delay.observe(max(0.0, now_ms - appended_ms) / 1000)
                logger.info("landed", key=key, partition=message.partition(), offset=message.offset())

    def _land(self, decoded: list[tuple[Message, Event]]) -> list[Letter]:
        """Land the batch in one transaction; if it cannot, one message at a time. Return the letters."""
        if not decoded:
            return []
        try:
            refused, attempts = self._attempt([event for _, event in decoded])
        except Stopping:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever it is, it is isolated below, not lost
            if len(decoded) == 1:
                return [Letter(decoded[0][0], first_line(exc), getattr(exc, "attempts", 1))]
            logger.warning("batch failed, landing it one message at a time", size=len(decoded), error=first_line(exc))
            return [letter for one in decoded for letter in self._land([one])]
        return [Letter(decoded[i][0], reason, attempts) for i, reason in refused.items()]

    def _attempt(self, events: list[Event]) -> tuple[dict[int, str], int]:
        """persist.land() in one transaction, with the retry policy above; return its refusals and the attempts."""
        while True:
            retrying = Retrying(retry=retry_if_exception_type(OUTAGES), stop=stop_after_attempt(self.max_attempts),
                                wait=BACKOFF, sleep=self._sleep, before_sleep=_warn("transient database error"),
                                reraise=True)
            try:
                return retrying(self._transaction, events), retrying.statistics.get("attempt_number", 1)
            except OUTAGES as exc:
                if self._database_answers():
                    exc.attempts = retrying.statistics.get("attempt_number", 1)  # type: ignore[attr-defined]
                    raise
                logger.warning("database unavailable; waiting for it", error=first_line(exc))
                self._retry_forever(self._ping, OUTAGES, "database still unavailable")

    def _transaction(self, events: list[Event]) -> dict[int, str]:
        with self.engine.begin() as conn:
            return persist.land(conn, events)

    def _ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def _database_answers(self) -> bool:
        try:
            self._ping()
        except OUTAGES:
            return False
        return True

    def _retry_forever(self, call: Callable[[], T], errors: tuple[type[BaseException], ...], what: str) -> T:
        """Call until it succeeds, backing off; only a stop request ends the wait (Stopping)."""
        return Retrying(retry=retry_if_exception_type(errors), stop=stop_never, wait=BACKOFF, sleep=self._sleep,
                        before_sleep=_warn(what), reraise=True)(call)

    def _sleep(self, seconds: float) -> None:
        if self.stopping.wait(seconds):
            raise Stopping()


def _warn(what: str) -> Callable[[RetryCallState], None]:
    """A tenacity hook: one warning per failed attempt, before its backoff."""
    def warn(state: RetryCallState) -> None:
        logger.warning(what, attempt=state.attempt_number, error=first_line(state.outcome.exception()))
    return warn


def _attributes(message: Message) -> dict[str, str | int]:
    return {"messaging.system": "kafka", "messaging.destination.name": message.topic() or "",
            "messaging.operation.type": "process", "messaging.kafka.message.key": (message.key() or b"").decode(
                "utf-8", "replace"), "messaging.destination.partition.id": str(message.partition()),
            "messaging.kafka.offset": message.offset()}
