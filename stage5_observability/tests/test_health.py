"""Liveness, readiness, request ids and the problem+json rendering of routing errors."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed


PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "code", "request_id"}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert PROBLEM_FIELDS <= set(body)
    assert body["status"] == status and body["code"] == code
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


@pytest.mark.check("S0-AC7")
def test_healthz_answers_ok(api):
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.check("S0-AC7")
def test_healthz_stays_up_while_the_database_is_down(api, database):
    with database.outage():
        started = time.monotonic()
        response = api.get("/healthz")
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0, "liveness must not wait on a dependency"


@pytest.mark.check("S0-AC8")
def test_readyz_reports_each_dependency(api):
    response = api.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["status"] == "up"
    assert body["checks"]["database"]["latency_ms"] >= 0


@pytest.mark.check("S0-AC8")
def test_readyz_names_the_database_when_it_is_down_and_recovers(api, database):
    with database.outage():
        response = api.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["database"]["status"] == "down"
    for attempt in Retrying(stop=stop_after_delay(15), wait=wait_fixed(0.2), reraise=True):
        with attempt:
            assert api.get("/readyz").status_code == 200, "the service did not recover by itself"


@pytest.mark.check("S0-AC9")
def test_every_response_carries_a_request_id(api):
    for method, path in (("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/nope"), ("POST", "/healthz")):
        response = api.request(method, path)
        assert len(response.headers.get("X-Request-ID", "")) >= 16


@pytest.mark.check("S0-AC9")
def test_a_sane_incoming_request_id_is_echoed_and_an_insane_one_replaced(api):
    sane = "trace-2026.11:abc_123"
    assert api.get("/healthz", headers={"X-Request-ID": sane}).headers["X-Request-ID"] == sane
    for insane in ("x" * 200, "a b", "evil\tid", "<script>"):
        echoed = api.get("/healthz", headers={"X-Request-ID": insane}).headers["X-Request-ID"]
        assert echoed != insane and len(echoed) >= 16


@pytest.mark.check("S0-AC10")
def test_unknown_route_is_a_404_problem(api):
    body = assert_problem(api.get("/no/such/route"), 404, "NOT_FOUND")
    assert body["instance"] == "/no/such/route"


@pytest.mark.check("S0-AC10")
def test_wrong_method_is_a_405_problem_with_allow(api):
    response = api.delete("/healthz")
    assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["Allow"]


UNEXPECTED_ERROR_PROBE = Path(__file__).parent / "probes" / "unexpected_error.py"


@pytest.mark.check("S0-AC10")
def test_an_unexpected_error_is_a_500_problem_with_nothing_internal(implementation, service):
    """White-box: add a route that raises to the implementation's own app, in a process of its own."""
    result = service.run_probe(UNEXPECTED_ERROR_PROBE, implementation.name)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["status"] == 500 and outcome["type"] == "application/problem+json"
    body = outcome["body"]
    assert body["code"] == "INTERNAL_ERROR" and body["request_id"] == outcome["request_id"]
    text = json.dumps(body)
    for leak in ("SELECT", "password_hash", "RuntimeError", "Traceback", "internals"):
        assert leak not in text
