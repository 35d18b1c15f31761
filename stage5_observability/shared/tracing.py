"""Tracing for either process: one OpenTelemetry tracer provider, and the trace context in Kafka headers.

The provider is made after gunicorn's fork (in the producer's runtime, in the consumer's loop): its
BatchSpanProcessor runs a thread, and threads do not survive fork(). Sampling is parent-based: a
request that arrives with a sampled `traceparent` is traced, otherwise TRACE_SAMPLE_RATE of new
traces are. The consumer continues the producer's trace from the message headers, so it samples
exactly what the request sampled.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from prometheus_client import Histogram
from sqlalchemy import Engine, event

from .database import statement_operation
from .settings import SharedSettings
from .spans import SpanFile

Headers = list[tuple[str, bytes]]
EXPORT_DELAY_MS = 500  # a finished span is written within half a second: `make trace` finds it at once


class Tracing:
    """This process's tracer provider and where its spans go; close() writes what is buffered and stops."""

    def __init__(self, settings: SharedSettings, *, service: str) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}),
                                       sampler=ParentBased(TraceIdRatioBased(settings.effective_trace_sample_rate)))
        self.provider.add_span_processor(BatchSpanProcessor(exporter(settings), schedule_delay_millis=EXPORT_DELAY_MS))
        self.tracer = self.provider.get_tracer(service)

    def close(self) -> None:
        self.provider.shutdown()


def exporter(settings: SharedSettings) -> SpanExporter:
    """OTLP over HTTP when an endpoint is set (Jaeger, in stage 7's stack); else the JSON-lines file."""
    if settings.otel_exporter_otlp_endpoint:
        return OTLPSpanExporter(endpoint=f"{settings.otel_exporter_otlp_endpoint.rstrip('/')}/v1/traces")
    return SpanFile(settings.trace_file)


def with_trace_context(headers: Iterable[tuple[str, bytes]]) -> Headers:
    """The headers plus the current span's W3C `traceparent` (and `tracestate`), for a message to carry."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [*headers, *((name, value.encode("ascii")) for name, value in carrier.items())]


def trace_context(headers: Iterable[tuple[str, bytes | None]] | None) -> Context:
    """The trace context a message carries in its headers (an empty one if it carries none)."""
    carrier = {name: value.decode("ascii", "replace") for name, value in headers or () if value is not None}
    return propagate.extract(carrier)


def child_span(tracer: Tracer, name: str, **options: Any) -> AbstractContextManager[Span]:
    """A new current span under the current one if that one is kept; else that one, as it is.

    A request whose trace is not kept would only make a non-recording child for the sampler to drop:
    asking the sampler, new ids and a context switch, for nothing (73,500 instructions a create,
    design/benchmark.md). The `traceparent` a message carries is then the request's own, unsampled,
    so the consumer drops its trace alike.
    """
    current = trace.get_current_span()
    return tracer.start_as_current_span(name, **options) if current.is_recording() else nullcontext(current)


def watch_statements(engine: Engine, tracer: Tracer, *, durations: Mapping[str, Histogram] | None = None) -> None:
    """Each statement the engine sends: a CLIENT span inside a kept trace, named by its operation, with its
    SQL text; and, where `durations` are given, its duration in the histogram of its operation.

    Hooked on the dialect's do_execute events, which stand in for the driver's call, rather than on the
    engine's before/after_cursor_execute: a listener of those turns on SQLAlchemy's event dispatch for
    every connection, transaction and statement; moving here took 124,000 instructions off a create
    (`make bench-instructions STAGE=5`, design/benchmark.md). Not opentelemetry-instrumentation-sqlalchemy,
    which listens there too, and keeps connection-usage metrics on every checkout and return, kept or not.
    """
    dialect, database = engine.dialect, engine.url.database or ""

    def send(statement: str, call: Callable[[], object]) -> None:
        operation = statement_operation(statement)
        if trace.get_current_span().is_recording():
            name = operation.upper()  # SELECT, INSERT...: the span's name and db.operation.name
            span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes={
                "db.system.name": dialect.name, "db.namespace": database, "db.operation.name": name,
                "db.query.text": statement})
        else:
            span = None
        started = time.perf_counter()
        try:
            call()
        except Exception as exc:
            if span is not None:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            if durations is not None:
                durations[operation].observe(time.perf_counter() - started)
            if span is not None:
                span.end()

    # Each handler sends the statement itself and returns True: SQLAlchemy then makes no call of its own.
    @event.listens_for(engine, "do_execute")
    def execute(cursor, statement, parameters, context) -> bool:
        send(statement, lambda: dialect.do_execute(cursor, statement, parameters, context))
        return True

    @event.listens_for(engine, "do_execute_no_params")
    def execute_no_params(cursor, statement, context) -> bool:
        send(statement, lambda: dialect.do_execute_no_params(cursor, statement, context))
        return True

    @event.listens_for(engine, "do_executemany")
    def execute_many(cursor, statement, parameters, context) -> bool:
        send(statement, lambda: dialect.do_executemany(cursor, statement, parameters, context))
        return True
