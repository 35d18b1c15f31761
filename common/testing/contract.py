"""Check an HTTP response against the OpenAPI contract: status, content type, headers and body."""
from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema
import requests

from .. import contract


@cache
def _validator(method: str, path: str, status: str, media_type: str) -> jsonschema.Draft202012Validator | None:
    spec = contract.openapi()
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
    /api/v1/tasks/{task_id}); return the parsed JSON body."""
    spec = contract.openapi()
    status = str(response.status_code)
    documented = _response(spec, method, path, status)
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    if documented.get("content"):
        assert media_type in documented["content"], f"{status} with {media_type}, contract says {list(documented['content'])}"
    for name, header in documented.get("headers", {}).items():
        if contract.resolve_ref(spec, header).get("required"):
            assert name in response.headers, f"{method} {path} {status} lacks the {name} header"
    validator = _validator(method.lower(), path, status, media_type)
    body = response.json() if media_type.endswith("json") else response.text
    if validator is not None:
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        assert not errors, f"{method} {path} {status} body breaks the contract: {errors[0].message} at {list(errors[0].path)}"
    return body
