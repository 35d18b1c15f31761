"""Users and login, and the bearer-token guard the task routes use."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import Blueprint, g, request

from common.errors import Unauthorized

from .. import runtime
from ..services import auth
from .schemas import Credentials, user_json
from .validation import parse_body

bp = Blueprint("auth", __name__, url_prefix="/api/v1")
View = TypeVar("View", bound=Callable)


@bp.post("/users")
def register():
    body = parse_body(Credentials)
    deps = runtime.current()
    user = auth.register(database=deps.database, passwords=deps.passwords, username=body.username,
                         password=body.password)
    return user_json(user), 201


@bp.post("/auth/login")
def login():
    body = parse_body(Credentials)
    deps = runtime.current()
    token = auth.login(database=deps.database, passwords=deps.passwords, policy=deps.tokens,
                       username=body.username, password=body.password)
    return {"access_token": token.value, "token_type": "Bearer", "expires_in": token.expires_in}


def login_required(view: View) -> View:
    """Reject the request with 401 unless it carries a valid bearer token; put its user in g.user_id."""

    @wraps(view)
    def guarded(*args, **kwargs):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized()
        g.user_id = auth.authenticate(token=token.strip(), policy=runtime.current().tokens)
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]
