"""The HTTP rendering of the error taxonomy: RFC 9457 problem details (needs Flask's request context).

Kept apart from common/errors.py so that services and repositories can raise errors without
importing Flask.
"""
from __future__ import annotations

from typing import Any

from flask import Response, g, json, request

from .errors import ApiError

PROBLEM_JSON = "application/problem+json"


def problem_body(error: ApiError) -> dict[str, Any]:
    """Return the problem-details document for an error raised while serving this request."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "instance": request.path,
        "code": error.code,
        "request_id": g.get("request_id", ""),
    }
    if error.errors:
        body["errors"] = error.errors
    return body


def error_response(error: ApiError) -> Response:
    """Render an error as `application/problem+json` with its headers."""
    response = Response(json.dumps(problem_body(error)), status=error.status, mimetype=PROBLEM_JSON)
    response.headers.update(error.headers)
    return response
