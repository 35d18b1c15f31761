"""Check an HTTP response against the OpenAPI contract: status, content type, headers and body."""
from __future__ import annotations

import os
from functools import cache
from typing import Any

import jsonschema
import requests

from .. import contract
from ..stages import REPO_ROOT, stage_of_path


def _stage_under_test() -> int | None:
    """The stage whose suite holds the running test (pytest names it in PYTEST_CURRENT_TEST)."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "").split("::", 1)[0]
    found = stage_of_path(REPO_ROOT / current) if current else None
    return found.number if found else None


@cache
def _spec(stage: int | None) -> dict[str, Any]:
    """The contract a response is checked against: the stage's own view, or all of it outside a stage suite."""
    return contract.openapi() if stage is None else contract.openapi_for_stage(stage)


@cache
def _validator(stage: int | None, method: str, path: str, status: str,
               media_type: str) -> jsonschema.Draft202012Validator | None:
    spec = _spec(stage)
    response = _response(spec, method, path, status)
    schema = response.get("content", {}).get(media_type, {}).get("schema")
    if schema is None:
        return None
    # Embedding the components lets "#/components/..." references resolve inside this one document.
    rooted = {**schema, "components": spec["components"]}
    return jsonschema.Draft202012Validator(rooted, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _response(spec: dict[str, Any], method: str, path: str, status: str) -> dict[str, Any]:
    operation = spec["paths"][path][method.lower()]
    responses = operation["responses"]
    if status not in responses:
        raise AssertionError(f"{method} {path} answered {status}, which the contract does not document "
                             f"({', '.join(sorted(responses))})")
    return contract.resolve_ref(spec, responses[status])


def assert_contract(response: requests.Response, method: str, path: str) -> Any:
    """Assert `response` is one the contract allows for `method path` (a template such as
    /api/v1/tasks/{task_id}) in the view of the stage under test; return the parsed JSON body."""
    stage = _stage_under_test()
    spec = _spec(stage)
    status = str(response.status_code)
    documented = _response(spec, method, path, status)
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    if documented.get("content"):
        assert media_type in documented["content"], f"{status} with {media_type}, contract says {list(documented['content'])}"
    for name, header in documented.get("headers", {}).items():
        if contract.resolve_ref(spec, header).get("required"):
            assert name in response.headers, f"{method} {path} {status} lacks the {name} header"
    validator = _validator(stage, method.lower(), path, status, media_type)
    body = response.json() if media_type.endswith("json") else response.text
    if validator is not None:
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        assert not errors, f"{method} {path} {status} body breaks the contract: {errors[0].message} at {list(errors[0].path)}"
    return body
