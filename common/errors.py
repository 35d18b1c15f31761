"""The error taxonomy: what can go wrong, with its status and stable code (no web framework here).

Services and repositories raise these; common/problems.py renders them as problem details.
"""
from __future__ import annotations

from http import HTTPStatus


class ApiError(Exception):
    """An error a client may see. Subclasses fix the status, the stable code and the title."""

    status: int = 500
    code: str = "INTERNAL_ERROR"
    detail: str = "An unexpected error occurred."

    def __init__(self, detail: str | None = None, *, errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail
        self.errors = errors
        self.headers = dict(headers or {})

    @property
    def title(self) -> str:
        return HTTPStatus(self.status).phrase


class ValidationFailed(ApiError):
    status, code, detail = 400, "VALIDATION_FAILED", "The request is not valid."


class MalformedJson(ApiError):
    status, code, detail = 400, "MALFORMED_JSON", "The request body is not valid JSON."


class Unauthorized(ApiError):
    status, code, detail = 401, "UNAUTHORIZED", "A valid bearer token is required."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="producer"'})


class InvalidToken(Unauthorized):
    """A bearer token was sent and refused: RFC 6750's `invalid_token`, with the reason in the challenge and the detail.

    A request without a token gets plain Unauthorized: RFC 6750 (3.1) sends no error code when
    there were no credentials to judge.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        # A quoted-string: the reasons are fixed sentences without quotes or backslashes.
        self.headers["WWW-Authenticate"] += f', error="invalid_token", error_description="{detail}"'


class InvalidCredentials(Unauthorized):
    code, detail = "INVALID_CREDENTIALS", "The username or password is wrong."


class NotFound(ApiError):
    status, code, detail = 404, "NOT_FOUND", "No such resource."


class TaskNotFound(NotFound):
    code, detail = "TASK_NOT_FOUND", "No such task."


class MethodNotAllowed(ApiError):
    status, code, detail = 405, "METHOD_NOT_ALLOWED", "This method is not allowed on this resource."


class Conflict(ApiError):
    status, code, detail = 409, "CONFLICT", "The request conflicts with the current state."


class UsernameTaken(Conflict):
    code, detail = "USERNAME_TAKEN", "That username is taken."


class TaskNotCancelable(Conflict):
    code, detail = "TASK_NOT_CANCELABLE", "Only a PENDING task can be canceled."


class IdempotencyKeyInUse(Conflict):
    code, detail = "IDEMPOTENCY_KEY_IN_USE", "A request with this Idempotency-Key is still in flight; retry later."

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class IdempotencyKeyMismatch(ApiError):
    status, code = 422, "IDEMPOTENCY_KEY_MISMATCH"
    detail = "This Idempotency-Key was used with a different request body."


class PayloadTooLarge(ApiError):
    status, code, detail = 413, "PAYLOAD_TOO_LARGE", "The request body is larger than 64 KiB."


class UnsupportedMediaType(ApiError):
    status, code, detail = 415, "UNSUPPORTED_MEDIA_TYPE", "The request body must be application/json."


class ServiceUnavailable(ApiError):
    status, code, detail = 503, "SERVICE_UNAVAILABLE", "A dependency is unavailable; retry later."

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class InternalError(ApiError):
    """The only body a 5xx we did not plan for may have: nothing about the internals."""


def client_error(status: int) -> ApiError:
    """A 4xx the framework raised that the taxonomy has no class for (a client that hung up, say)."""
    error = ApiError(HTTPStatus(status).description or HTTPStatus(status).phrase)
    error.status, error.code = status, HTTPStatus(status).name
    return error
