"""A request's trace: kept from the client's traceparent, on its log lines and the consumer's, and across Kafka in the
span file or, with an endpoint set, in the OTLP export; and the trace tool that prints it."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                        ExportTraceServiceResponse)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from tenacity import Retrying, stop_after_delay, wait_fixed

from common.service import package_pythonpath

from .telemetry import spans

SECONDS = 20


def traceparent(*, sampled: bool = True) -> tuple[str, str, str]:
    """A W3C traceparent (sampled unless told), with its trace id and (client) span id."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}", trace_id, span_id


def wait_for(what: str, found):
    """Poll `found()` until it returns something truthy; fail with `what` after SECONDS."""
    for attempt in Retrying(stop=stop_after_delay(SECONDS), wait=wait_fixed(0.1), reraise=True):
        with attempt:
            value = found()
            assert value, f"{what} within {SECONDS} s"
    return value


def create_traced(service, account, *, sampled: bool = True) -> tuple[dict, str, str, str]:
    header, trace_id, client_span = traceparent(sampled=sampled)
    request_id = f"trace-check-{secrets.token_hex(6)}"
    headers = {**account.headers, "traceparent": header, "X-Request-ID": request_id}
    response = service.client().post("/api/v1/tasks", json={"type": "email.send", "payload": {"n": 1}},
                                     headers=headers)
    assert response.status_code == 202, response.text
    return response.json(), trace_id, client_span, request_id


def trace_spans(service, trace_id: str) -> list[dict]:
    """The trace's spans once its server, publish and consumer spans are all written (each process writes its own,
    in batches, so they arrive in any order)."""
    def complete() -> list[dict] | None:
        found = [span for span in spans(service) if span.get("trace_id") == trace_id]
        return found if {"SERVER", "PRODUCER", "CONSUMER"} <= {s.get("kind") for s in found} else None
    return wait_for(f"the server, publish and consumer spans of trace {trace_id} in TRACE_FILE", complete)


@pytest.mark.check("S5-AC3")
def test_the_requests_trace_id_is_on_its_log_lines_and_the_consumers_whose_span_descends_from_it(service, alice):
    task, trace_id, client_span, request_id = create_traced(service, alice)
    lines = wait_for("the request's access line", lambda: [line for line in service.log_text().splitlines()
                                                            if request_id in line])
    assert all(trace_id in line for line in lines), f"a line of request {request_id} lacks trace {trace_id}: {lines}"
    landed = wait_for("the consumer's line for the task", lambda: [
        line for line in service.consumer_log_text().splitlines() if task["id"] in line and trace_id in line])
    assert landed, f"no consumer line names both task {task['id']} and trace {trace_id}"

    found = {span["span_id"]: span for span in trace_spans(service, trace_id)}
    servers = [s for s in found.values() if s["kind"] == "SERVER" and s["parent_span_id"] == client_span]
    assert len(servers) == 1, "the request's server span continues the client's traceparent"
    consumer = [s for s in found.values() if s["kind"] == "CONSUMER"]
    assert consumer, "the consumer's span is in the same trace"
    chain, span = [], consumer[0]
    while span["parent_span_id"] in found:
        span = found[span["parent_span_id"]]
        chain.append(span["kind"])
    assert span is servers[0], f"the consumer's span does not descend from the request's span (ancestors: {chain})"
    assert "PRODUCER" in chain, "the publish span sits between the request and the consumer"


@pytest.mark.check("S5-AC3")
def test_a_request_sent_unsampled_leaves_no_span_in_either_process_and_its_lines_still_carry_its_id(service, alice):
    task, trace_id, _, request_id = create_traced(service, alice, sampled=False)
    lines = wait_for("the request's access line", lambda: [line for line in service.log_text().splitlines()
                                                            if request_id in line])
    assert all(trace_id in line for line in lines), f"a line of request {request_id} lacks trace {trace_id}: {lines}"
    wait_for(f"the consumer's line naming task {task['id']} and trace {trace_id}", lambda: [
        line for line in service.consumer_log_text().splitlines() if task["id"] in line and trace_id in line])
    # A kept trace sent afterwards, once complete in the file, shows both processes have written what they had.
    _, later, _, _ = create_traced(service, alice)
    trace_spans(service, later)
    kept = [(span["kind"], span["name"]) for span in spans(service) if span.get("trace_id") == trace_id]
    assert not kept, f"the client did not sample trace {trace_id}, yet it has spans: {kept}"


@pytest.mark.check("S5-AC7")
def test_the_trace_tool_prints_a_create_found_by_its_request_id_as_one_tree_across_kafka(service, alice):
    task, trace_id, _, request_id = create_traced(service, alice)
    trace_spans(service, trace_id)
    assert service.package is not None
    printed = subprocess.run([sys.executable, "-m", f"{service.package.name}.shared.spans", request_id,
                              "--file", service.env["TRACE_FILE"]], capture_output=True, text=True, timeout=60,
                             cwd=service.package.path.parent, env={**os.environ, "PYTHONPATH": package_pythonpath(service.package)})
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert trace_id in lines[0], lines[:2]
    tree = lines[1:]
    assert tree and not tree[0].startswith(" "), "the server span is the root"
    assert "server" in tree[0] and "/api/v1/tasks" in tree[0], tree[0]
    depth = {line.strip(): len(line) - len(line.lstrip()) for line in tree}
    publish = next(d for line, d in depth.items() if "producer)" in line and "publish" in line)
    process = next(d for line, d in depth.items() if "(consumer, consumer)" in line)
    assert process > publish > 0, f"the consumer's span is not below the publish span:\n{printed.stdout}"


class OtlpReceiver:
    """An OTLP/HTTP trace receiver (protobuf, POST /v1/traces) on a free port, keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/v1/traces":
                    receiver.keep(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()
                self.wfile.write(ExportTraceServiceResponse().SerializeToString())

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def keep(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = next((a.value.string_value for a in resource.resource.attributes if a.key == "service.name"), "")
            for scope in resource.scope_spans:
                self.spans += [{"trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                                "parent_span_id": s.parent_span_id.hex() or None, "service": service,
                                "kind": Span.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_")} for s in scope.spans]

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.check("S5-AC3")
def test_with_an_otlp_endpoint_the_same_trace_crosses_kafka_in_the_export(launch, new_account):
    receiver = OtlpReceiver()
    try:
        service = launch({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}, name="otlp")
        task, trace_id, client_span, _ = create_traced(service, new_account())

        def complete() -> dict | None:
            found = {s["span_id"]: s for s in receiver.spans if s["trace_id"] == trace_id}
            return found if {"SERVER", "PRODUCER", "CONSUMER"} <= {s["kind"] for s in found.values()} else None

        found = wait_for(f"the server, publish and consumer spans of trace {trace_id} at the OTLP endpoint", complete)
        server = next(s for s in found.values() if s["kind"] == "SERVER")
        assert server["parent_span_id"] == client_span and server["service"] == "producer"
        span = next(s for s in found.values() if s["kind"] == "CONSUMER")
        assert span["service"] == "consumer"
        while span["parent_span_id"] in found:
            span = found[span["parent_span_id"]]
        assert span is server, "the consumer's exported span does not descend from the request's span"
        assert not any(spans(service)), "with an OTLP endpoint set, nothing goes to the span file"
    finally:
        receiver.close()
