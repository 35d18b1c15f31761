"""What this stage attaches to the app and its clients: a span per request, the libraries' tracing of the
database and Redis, and the pool's and routes' metrics.

The tracer provider and the metrics are the runtime's (runtime.py); this module only hooks them on.
OpenTelemetry's SQLAlchemy instrumentor is process-wide: the first runtime of a process instruments
it (in gunicorn, each worker has one), a second one in the same process (a test's) is not traced.
"""
from __future__ import annotations

import fcntl
import functools
import os
import struct
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from flask import Flask, Response, g, request
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from prometheus_flask_exporter import PrometheusMetrics

from ..shared.database import max_connections
from ..shared.spans import REQUEST_ID
from ..shared.tracing import Tracing
from .metrics import ProducerMetrics, files_locked, watch_engine
from .repositories.cache import RedisCache
from .repositories.db import Database

# Probes and scrapes come every few seconds each: traced, they would bury the requests.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # the route label of a path no route serves (a 404), whatever the path was
CREATE_ENDPOINT = "tasks.create"
NEW_FILE_READS, NEW_FILE_PAUSE_SECONDS = 3, 0.01  # a new worker's file has its header within microseconds


def instrument_clients(*, tracing: Tracing, metrics: ProducerMetrics, database: Database, cache: RedisCache) -> None:
    """Trace every statement and Redis call; time the statements and follow the pools."""
    for engine in database.engines:
        watch_engine(engine, metrics, max_connections=max_connections(engine.url))
    SQLAlchemyInstrumentor().instrument(engines=list(database.engines), tracer_provider=tracing.provider)
    RedisInstrumentor.instrument_client(cache.client, tracer_provider=tracing.provider)


def init_app(app: Flask, *, tracing: Tracing, metrics: ProducerMetrics) -> None:
    """A server span per request (traced_requests); RED series and GET /metrics (observe_requests)."""
    traced_requests(app, tracing.tracer)
    observe_requests(app, metrics)


def traced_requests(app: Flask, tracer: Tracer) -> None:
    """One SERVER span per request, continuing the caller's `traceparent`, named by its route template.

    Not opentelemetry-instrumentation-flask: measured here, it costs about 90 µs a request even when the
    trace is not sampled (it builds the request's attributes twice and the URL three times), 13 % of
    a hot-key read; this costs a sampler call and, for a kept trace, the attributes (design/tracing.md).
    The span starts after router.init_app's request id and ends in teardown, after the access line.
    """

    @app.before_request
    def start_span() -> None:
        if request.path in UNTRACED_PATHS:
            # Probes: no span, and no trace of their own for /readyz's database and Redis pings either.
            g.span_scope = ExitStack()
            g.span_scope.enter_context(suppress_instrumentation())
            return
        route = request.url_rule.rule if request.url_rule else UNMATCHED
        span = tracer.start_span(f"{request.method} {route}", context=propagate.extract(request.headers),
                                 kind=SpanKind.SERVER)
        if span.is_recording():
            span.set_attributes({"http.request.method": request.method, "http.route": route, "url.path": request.path,
                                 REQUEST_ID: g.request_id})
        g.span_scope = ExitStack()
        g.span_scope.enter_context(trace.use_span(span, end_on_exit=True))

    @app.after_request
    def record_status(response: Response) -> Response:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
        return response

    @app.teardown_request
    def end_span(_: BaseException | None) -> None:
        if (scope := g.pop("span_scope", None)) is not None:
            scope.close()


def observe_requests(app: Flask, metrics: ProducerMetrics) -> None:
    """Time every request by its route template, count the creates' outcomes, and serve GET /metrics."""

    @app.before_request
    def start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule else UNMATCHED
            method = request.method if request.method in METHODS else "other"
            metrics.requests.labels(route, method, str(response.status_code)).observe(time.perf_counter() - started)
        if request.endpoint == CREATE_ENDPOINT:
            count_create(metrics, response)
        return response

    # The exporter's exposition: the multiprocess collector when PROMETHEUS_MULTIPROC_DIR is set. Its own
    # per-request series are off (export_defaults): they label the raw method, which a client chooses.
    PrometheusMetrics(app, registry=metrics.registry, export_defaults=False, path="/metrics",
                      metrics_decorator=while_files_stay)


def count_create(metrics: ProducerMetrics, response: Response) -> None:
    """A create's business outcome: accepted, replayed, or refused with the problem's code."""
    if response.status_code < 400:
        (metrics.replays if response.headers.get("Idempotent-Replayed") else metrics.accepted).inc()
        return
    body = response.get_json(silent=True) if response.mimetype == "application/problem+json" else None
    code = body.get("code") if isinstance(body, dict) else None
    metrics.rejected.labels(code if isinstance(code, str) and code.isupper() else "OTHER").inc()


def while_files_stay(view: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap GET /metrics: a scrape reads the files while no worker's files are being archived.

    Between the archive's write and the dead file's removal a reader would count that worker twice (and
    its next scrape would look like a counter reset); a file removed under it would fail the scrape.
    A file a new worker is creating at that moment is read again: prometheus_client creates it empty and
    sizes it just after, and a read in between finds no header (struct.error).
    """
    @functools.wraps(view)
    def scrape(*args, **kwargs) -> Response:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return view(*args, **kwargs)
        for attempt in range(1, NEW_FILE_READS + 1):
            try:
                with files_locked(Path(directory), fcntl.LOCK_SH):
                    return view(*args, **kwargs)
            except struct.error:
                if attempt == NEW_FILE_READS:
                    raise
                time.sleep(NEW_FILE_PAUSE_SECONDS)
        raise AssertionError("unreachable: the last attempt returns or raises")
    return scrape
