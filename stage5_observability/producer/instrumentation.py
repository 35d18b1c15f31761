"""What this stage attaches to the app and its clients: a span per request and per statement, the Redis
client's tracing, and the statements' and routes' metrics.

The tracer provider and the metrics are the runtime's (runtime.py); this module only hooks them on.
"""
from __future__ import annotations

import fcntl
import functools
import os
import struct
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, Response, request
from opentelemetry import context, propagate, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY  # what suppress_instrumentation() sets
from opentelemetry.context import Context
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from prometheus_client import Histogram
from prometheus_flask_exporter import PrometheusMetrics

from ..shared.spans import REQUEST_ID
from ..shared.tracing import Tracing, watch_statements
from .metrics import ProducerMetrics, files_locked
from .repositories.cache import RedisCache
from .repositories.db import Database

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Probes and scrapes come every few seconds each: traced, they would bury the requests.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # the route label of a path no route serves (a 404), whatever the path was
CREATE_ENDPOINT = "tasks.create"
NEW_FILE_READS, NEW_FILE_PAUSE_SECONDS = 3, 0.01  # a new worker's file has its header within microseconds


def instrument_clients(*, tracing: Tracing, metrics: ProducerMetrics, database: Database, cache: RedisCache) -> None:
    """Trace every statement and Redis call of a kept trace; time the statements."""
    for engine in database.engines:
        watch_statements(engine, tracing.tracer, durations=metrics.query_duration)
    RedisInstrumentor.instrument_client(cache.client, tracer_provider=tracing.provider)


def init_app(app: Flask, *, tracing: Tracing, metrics: ProducerMetrics) -> None:
    """Wrap the app in ObservedRequests (a server span and the RED series); count creates; serve GET /metrics."""
    app.wsgi_app = ObservedRequests(app.wsgi_app, tracer=tracing.tracer, requests=metrics.requests)  # type: ignore[method-assign]

    @app.after_request
    def count_creates(response: Response) -> Response:
        """A create's business outcome, which only the response tells (its status, headers and problem code)."""
        if request.endpoint == CREATE_ENDPOINT:
            count_create(metrics, response)
        return response

    # The exporter's exposition: the multiprocess collector when PROMETHEUS_MULTIPROC_DIR is set. Its own
    # per-request series are off (export_defaults): they label the raw method, which a client chooses.
    PrometheusMetrics(app, registry=metrics.registry, export_defaults=False, path="/metrics",
                      metrics_decorator=while_files_stay)


class ObservedRequests:
    """WSGI middleware: per request, one SERVER span that continues the caller's `traceparent`, and the
    RED histogram observed by route template, method and status.

    Around Flask rather than inside it (request hooks, or opentelemetry-instrumentation-flask): as hooks,
    the span and the histogram cost a hot-key read about 183,000 instructions more than this, counted with
    callgrind, some 15 % of the read (design/benchmark.md).
    Flask's whole handling, the access line included, runs inside the span, so that line carries its ids.
    The route template is known only once Flask has matched the path: `Answer` reads it when Flask
    starts the response, and the span is named after it then.
    """

    def __init__(self, app: WSGIApplication, *, tracer: Tracer, requests: Histogram) -> None:
        self.app, self.tracer, self.requests = app, tracer, requests
        self._series: dict[tuple[str, str, str], Histogram] = {}  # labels() once per route, method and status
        # The environ keys of the headers the propagators read: a request with none of them has no parent to extract.
        self._carriers = frozenset(environ_key(field) for field in propagate.get_global_textmap().fields)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started, method, answer = time.perf_counter(), environ["REQUEST_METHOD"], Answer(environ, start_response)
        # Probes and scrapes: no span, and no trace of their own for /readyz's database and Redis pings.
        span = None if environ.get("PATH_INFO") in UNTRACED_PATHS else self.tracer.start_span(
            method, context=self._parent(environ), kind=SpanKind.SERVER)
        kept = span is not None and span.is_recording()
        current = trace.set_span_in_context(span) if span is not None else None
        if not kept:
            # The libraries' instrumentation is off outside a kept trace: the sampler would drop their spans
            # (it follows the parent), but only after they have read the statement and the URL for them.
            current = context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, current)
        token = context.attach(current)
        try:
            return self.app(environ, answer)
        except Exception as exc:  # Flask answers its errors itself; this is one it let through (testing)
            if kept:
                span.record_exception(exc)
            raise
        finally:
            context.detach(token)
            route = answer.route
            self._observe(route, method, answer.status, started)
            if span is not None:
                if kept:
                    span.update_name(f"{method} {route}")
                    span.set_attributes({"http.request.method": method, "http.route": route,
                                         "url.path": environ.get("PATH_INFO", ""),
                                         "http.response.status_code": answer.status, REQUEST_ID: answer.request_id})
                    if answer.status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                span.end()

    def _parent(self, environ: WSGIEnvironment) -> Context:
        """The caller's trace context, from the request's headers; an empty one if it sent none."""
        if self._carriers.isdisjoint(environ):
            return NO_PARENT
        return propagate.extract(environ, getter=ENVIRON_HEADERS)

    def _observe(self, route: str, method: str, status: int, started: float) -> None:
        """Observe the request's duration under its labels."""
        labels = (route, method if method in METHODS else "other", str(status))
        if (series := self._series.get(labels)) is None:
            series = self._series[labels] = self.requests.labels(*labels)
        series.observe(time.perf_counter() - started)


class Answer:
    """A WSGI start_response that remembers the status and headers it was given, and the route that matched."""

    def __init__(self, environ: WSGIEnvironment, start_response: StartResponse) -> None:
        self.environ, self.start_response = environ, start_response
        self.status, self.headers, self.route = 500, [], UNMATCHED  # an answer never started is a failure

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info=None):  # noqa: ANN001 - WSGI's
        self.status, self.headers = int(status[:3]), headers
        # Flask starts the response while its request is still in the environ (werkzeug's populate_request);
        # it takes it out when the request ends, before this middleware's own code runs again.
        rule = getattr(self.environ.get("werkzeug.request"), "url_rule", None)
        self.route = rule.rule if rule else UNMATCHED
        return self.start_response(status, headers, exc_info)

    @property
    def request_id(self) -> str:
        return next((value for name, value in self.headers if name == "X-Request-ID"), "")


class EnvironHeaders:
    """A propagation getter over the WSGI environ: `traceparent` is HTTP_TRACEPARENT there."""

    def get(self, carrier: WSGIEnvironment, key: str) -> list[str] | None:
        value = carrier.get(environ_key(key))
        return [value] if value is not None else None

    def keys(self, carrier: WSGIEnvironment) -> list[str]:
        return [key[5:].lower().replace("_", "-") for key in carrier if key.startswith("HTTP_")]


def environ_key(header: str) -> str:
    """Where WSGI keeps a request header: `traceparent` is HTTP_TRACEPARENT."""
    return "HTTP_" + header.upper().replace("-", "_")


ENVIRON_HEADERS = EnvironHeaders()
NO_PARENT = Context()  # what propagate.extract gives for headers that carry no trace context


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
