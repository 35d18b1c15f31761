"""Routes and middleware: request ids, blueprints, and one error handler for every failure."""
from __future__ import annotations

import re
import uuid

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from common.errors import (ApiError, InternalError, MethodNotAllowed, NotFound, PayloadTooLarge,
                           UnsupportedMediaType, client_error)
from common.problems import error_response

from .handlers import auth, docs, health, tasks

# An incoming id is echoed only if it cannot smuggle anything into logs or headers.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_HTTP_ERRORS: dict[int, type[ApiError]] = {404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge,
                                           415: UnsupportedMediaType}


def init_app(app: Flask) -> None:
    """Register the blueprints, the request-id middleware and the error handlers."""
    app.register_blueprint(health.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(tasks.bp)
    app.before_request(assign_request_id)
    app.after_request(echo_request_id)
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)


def assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


def echo_request_id(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
    return response


def http_error(exc: HTTPException) -> Response:
    """Werkzeug's own errors (routing, methods, body size) rendered as problem details."""
    status = exc.code or 500
    if status >= 500:
        return unexpected_error(exc)
    error_type = _HTTP_ERRORS.get(status)
    response = error_response(error_type() if error_type else client_error(status))
    if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))  # type: ignore[attr-defined]
    return response


def unexpected_error(exc: Exception) -> Response:
    """A bug: log it with its traceback, tell the client nothing about the internals."""
    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(InternalError())
