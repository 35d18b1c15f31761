"""Users and login, and the bearer-token guard the task routes use."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import TypeVar

from flask import Blueprint, current_app, g, request

from common.errors import Unauthorized

from ..services import auth
from .schemas import Credentials, user_json
from .validation import parse_body

bp = Blueprint("auth", __name__, url_prefix="/api/v1")
View = TypeVar("View", bound=Callable)


def token_policy() -> auth.TokenPolicy:
    settings = current_app.extensions["settings"]
    return auth.TokenPolicy(secret=settings.jwt_secret.get_secret_value(),
                            ttl=timedelta(seconds=settings.access_token_ttl_seconds))


@bp.post("/users")
def register():
    body = parse_body(Credentials)
    user = auth.register(username=body.username, password=body.password,
                         passwords=current_app.extensions["passwords"])
    return user_json(user), 201


@bp.post("/auth/login")
def login():
    body = parse_body(Credentials)
    token = auth.login(username=body.username, password=body.password,
                       passwords=current_app.extensions["passwords"], policy=token_policy())
    return {"access_token": token.value, "token_type": "Bearer", "expires_in": token.expires_in}


def login_required(view: View) -> View:
    """Reject the request with 401 unless it carries a valid bearer token; put its user in g.user_id."""

    @wraps(view)
    def guarded(*args, **kwargs):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized()
        g.user_id = auth.authenticate(token=token.strip(), policy=token_policy())
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]
