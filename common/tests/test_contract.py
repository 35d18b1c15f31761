"""The shared OpenAPI contract: valid 3.1, complete against the specification, stage variants marked."""
from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.versions.shortcuts import get_spec_version

from common import contract
from common.stages import STAGES

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
STAGE_NUMBERS = [s.number for s in STAGES]


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method, path, operation


def test_contract_validates_as_openapi_3_1():
    spec = contract.openapi()
    assert (get_spec_version(spec).major, get_spec_version(spec).minor) == ("3", "1")
    validate(spec)


@pytest.mark.parametrize("number", STAGE_NUMBERS)
def test_every_stages_view_validates_as_openapi_3_1(number):
    validate(contract.openapi_for_stage(number))


def test_contract_covers_every_route_and_status_of_the_specification():
    spec = contract.openapi()
    documented = {(method, path): set(op["responses"]) for method, path, op in operations(spec)}
    for route, statuses in ROUTES.items():
        assert route in documented, f"{route} is missing"
        assert statuses <= documented[route], f"{route} lacks {statuses - documented[route]}"


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


def test_contract_marks_each_stage_variant():
    spec = contract.openapi()
    create = spec["paths"]["/api/v1/tasks"]["post"]
    assert create["responses"]["201"].get("x-until-stage") == 3
    assert create["responses"]["202"].get("x-since-stage") == 4
    idempotency_key = contract.resolve_ref(spec, create["parameters"][1])
    assert idempotency_key["name"] == "Idempotency-Key" and idempotency_key.get("x-since-stage") == 4
    assert spec["paths"]["/metrics"]["get"].get("x-since-stage") == 5
    assert contract.resolve_ref(spec, create["responses"]["429"]).get("x-since-stage") == 6


@pytest.mark.parametrize(("number", "has", "lacks"), [
    (0, {"GET /healthz", "GET /readyz", "GET /openapi.json", "GET /docs"}, {"POST /api/v1/tasks", "GET /metrics"}),
    (2, {"POST /api/v1/tasks", "POST /api/v1/tasks/{task_id}/cancel"}, {"GET /metrics"}),
    (5, {"GET /metrics"}, set()),
])
def test_a_stages_view_keeps_only_the_operations_it_serves(number, has, lacks):
    served = {f"{method.upper()} {path}" for method, path, _ in operations(contract.openapi_for_stage(number))}
    assert has <= served and not lacks & served


@pytest.mark.parametrize(("number", "statuses", "idempotency_key"), [
    (2, {"201"}, False), (4, {"202"}, True), (6, {"202", "429"}, True)])
def test_a_stages_view_keeps_only_the_variants_it_serves(number, statuses, idempotency_key):
    create = contract.openapi_for_stage(number)["paths"]["/api/v1/tasks"]["post"]
    assert statuses <= set(create["responses"]) and not {"201", "202", "429"} - statuses & set(create["responses"])
    names = {contract.resolve_ref(contract.openapi(), p)["name"] for p in create["parameters"]}
    assert ("Idempotency-Key" in names) is idempotency_key


def test_links_lead_from_a_created_task_to_its_get_and_cancel():
    spec = contract.openapi()
    by_id = {op["operationId"]: (path, op) for _, path, op in operations(spec)}
    create = spec["paths"]["/api/v1/tasks"]["post"]
    for status in ("201", "202"):
        links = [contract.resolve_ref(spec, link) for link in create["responses"][status]["links"].values()]
        assert {link["operationId"] for link in links} == {"getTask", "cancelTask"}
        for link in links:
            path, _ = by_id[link["operationId"]]
            assert set(link["parameters"]) == {"task_id"} and "{task_id}" in path
            assert link["parameters"]["task_id"] == "$response.body#/id"


def test_every_link_names_an_operation_of_the_contract():
    spec = contract.openapi()
    known = {op["operationId"] for _, _, op in operations(spec)}
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            for name, link in contract.resolve_ref(spec, response).get("links", {}).items():
                target = contract.resolve_ref(spec, link)["operationId"]
                assert target in known, f"{method} {path} {status} link {name} names {target}"
