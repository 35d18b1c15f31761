"""A request's trace: kept from the client's traceparent, on its log lines and the consumer's, and across Kafka in the
span file; and the trace tool that prints it."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from common.service import package_pythonpath

from .telemetry import spans

SECONDS = 20


def traceparent() -> tuple[str, str, str]:
    """A sampled W3C traceparent, with its trace id and (client) span id."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def wait_for(what: str, found):
    """Poll `found()` until it returns something truthy; fail with `what` after SECONDS."""
    for attempt in Retrying(stop=stop_after_delay(SECONDS), wait=wait_fixed(0.1), reraise=True):
        with attempt:
            value = found()
            assert value, f"{what} within {SECONDS} s"
    return value


def create_traced(service, account) -> tuple[dict, str, str, str]:
    header, trace_id, client_span = traceparent()
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
