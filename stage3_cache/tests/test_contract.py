"""The OpenAPI contract: valid 3.1, complete against the specification, and served."""
from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.versions.shortcuts import get_spec_version

from common import contract

# Section 3 of the specification: every route with every status it may answer.
ROUTES = {
    ("post", "/api/v1/users"): {"201", "400", "409", "413", "415"},
    ("post", "/api/v1/auth/login"): {"200", "400", "401", "413", "415"},
    ("post", "/api/v1/tasks"): {"201", "202", "400", "401", "409", "413", "415", "422", "429", "503"},
    ("get", "/api/v1/tasks/{task_id}"): {"200", "400", "401", "404"},
    ("get", "/api/v1/tasks"): {"200", "400", "401"},
    ("post", "/api/v1/tasks/{task_id}/cancel"): {"200", "401", "404", "409"},
    ("get", "/healthz"): {"200"},
    ("get", "/readyz"): {"200", "503"},
    ("get", "/metrics"): {"200"},
}


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method, path, operation


@pytest.mark.check("S0-AC1")
def test_contract_validates_as_openapi_3_1():
    spec = contract.openapi()
    assert (get_spec_version(spec).major, get_spec_version(spec).minor) == ("3", "1")
    validate(spec)


@pytest.mark.check("S0-AC1")
def test_service_serves_the_contract_unchanged(api):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == contract.openapi()


@pytest.mark.check("S0-AC2")
def test_contract_covers_every_route_and_status_of_the_specification():
    spec = contract.openapi()
    documented = {(method, path): set(op["responses"]) for method, path, op in operations(spec)}
    for route, statuses in ROUTES.items():
        assert route in documented, f"{route} is missing"
        assert statuses <= documented[route], f"{route} lacks {statuses - documented[route]}"


@pytest.mark.check("S0-AC2")
def test_contract_documents_the_headers_of_the_specification():
    spec = contract.openapi()
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            response = contract.resolve_ref(spec, response)
            headers = {name.lower() for name in response.get("headers", {})}
            assert "x-request-id" in headers, f"{method} {path} {status} lacks X-Request-ID"
            if status == "401":
                assert "www-authenticate" in headers, f"{method} {path} 401 lacks WWW-Authenticate"
            if status in ("429", "503") and path.startswith("/api/"):
                assert "retry-after" in headers, f"{method} {path} {status} lacks Retry-After"
            if status == "429":
                assert "ratelimit" in headers, f"{method} {path} 429 lacks RateLimit"
            if status.startswith(("4", "5")) and path.startswith("/api/"):
                assert "application/problem+json" in response["content"], f"{method} {path} {status}"
    create = spec["paths"]["/api/v1/tasks"]["post"]
    for status in ("201", "202"):
        headers = contract.resolve_ref(spec, create["responses"][status])["headers"]
        assert "location" in {name.lower() for name in headers}
    parameters = [contract.resolve_ref(spec, p) for p in create.get("parameters", [])]
    assert any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in parameters)


@pytest.mark.check("S0-AC2")
def test_contract_marks_each_stage_variant():
    responses = contract.openapi()["paths"]["/api/v1/tasks"]["post"]["responses"]
    assert responses["201"].get("x-until-stage") == 3
    assert responses["202"].get("x-since-stage") == 4


@pytest.mark.check("S0-AC11")
def test_docs_page_lists_every_operation(api):
    response = api.get("/docs")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    for method, path, operation in operations(contract.openapi()):
        assert f'<section id="{operation["operationId"]}">' in response.text, f"{method} {path} is not listed"
