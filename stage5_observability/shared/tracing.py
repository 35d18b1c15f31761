"""Tracing for either process: one OpenTelemetry tracer provider, and the trace context in Kafka headers.

The provider is made after gunicorn's fork (in the producer's runtime, in the consumer's loop): its
BatchSpanProcessor runs a thread, and threads do not survive fork(). Sampling is parent-based: a
request that arrives with a sampled `traceparent` is traced, otherwise TRACE_SAMPLE_RATE of new
traces are. The consumer continues the producer's trace from the message headers, so it samples
exactly what the request sampled.
"""
from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
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


def trace_statements(engine: Engine, tracer: Tracer) -> None:
    """A CLIENT span per statement run inside a kept trace, named by its operation, with its SQL text.

    Not opentelemetry-instrumentation-sqlalchemy: it also keeps connection-usage metrics on every
    checkout and return, kept trace or not; this in its place cost the producer's create about 57,000
    instructions less (counted with callgrind, design/benchmark.md). The producer counts its pools itself.
    """
    database = engine.url.database or ""

    @event.listens_for(engine, "before_cursor_execute")
    def start(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ARG001
        if trace.get_current_span().is_recording():
            operation = statement_operation(statement).upper()
            context.span = tracer.start_span(operation, kind=SpanKind.CLIENT, attributes={
                "db.system.name": engine.dialect.name, "db.namespace": database,
                "db.operation.name": operation, "db.query.text": statement})

    @event.listens_for(engine, "after_cursor_execute")
    def stop(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ARG001
        if (span := getattr(context, "span", None)) is not None:
            span.end()

    @event.listens_for(engine, "handle_error")
    def fail(error) -> None:  # a failed statement never reaches after_cursor_execute
        if (span := getattr(error.execution_context, "span", None)) is not None:
            span.set_status(Status(StatusCode.ERROR, type(error.original_exception).__name__))
            span.end()
