"""Registration, login, and what a token must be to be accepted."""
from __future__ import annotations

import base64
import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from sqlalchemy import text

from common.testing.contract import assert_contract

from .cache_contract import evict


@pytest.mark.check("S1-AC1")
def test_register_returns_the_user_without_secrets(api):
    username = f"u{uuid.uuid4().hex[:12]}"
    response = api.post("/api/v1/users", json={"username": username, "password": "correct horse battery"})
    assert response.status_code == 201
    user = assert_contract(response, "POST", "/api/v1/users")
    assert user["username"] == username and set(user) == {"id", "username", "created_at"}
    assert uuid.UUID(user["id"]).version == 7


@pytest.mark.check("S1-AC1")
def test_a_taken_username_is_a_409_even_under_concurrent_registration(api):
    username = f"u{uuid.uuid4().hex[:12]}"
    body = {"username": username, "password": "correct horse battery"}
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: api.post("/api/v1/users", json=body).status_code, range(8)))
    assert statuses == [201] + [409] * 7
    again = api.post("/api/v1/users", json=body)
    assert assert_contract(again, "POST", "/api/v1/users")["code"] == "USERNAME_TAKEN"


@pytest.mark.check("S1-AC2")
def test_login_returns_a_bearer_token(api, alice):
    response = api.post("/api/v1/auth/login", json={"username": alice.username, "password": alice.password})
    assert response.status_code == 200
    token = assert_contract(response, "POST", "/api/v1/auth/login")
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["sub"] == alice.id and {"iat", "exp", "jti"} <= set(claims)
    assert jwt.get_unverified_header(token["access_token"])["alg"] == "HS256"


@pytest.mark.check("S1-AC2")
def test_unknown_user_and_wrong_password_get_the_same_answer(api, alice):
    wrong = api.post("/api/v1/auth/login", json={"username": alice.username, "password": "not-the-password"})
    unknown = api.post("/api/v1/auth/login", json={"username": f"nobody{uuid.uuid4().hex[:8]}",
                                                   "password": "not-the-password"})
    bodies = [assert_contract(r, "POST", "/api/v1/auth/login") for r in (wrong, unknown)]
    assert wrong.status_code == unknown.status_code == 401
    assert [{k: b[k] for k in ("code", "title", "detail")} for b in bodies] == [
        {"code": "INVALID_CREDENTIALS", "title": bodies[0]["title"], "detail": bodies[0]["detail"]}] * 2
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")


def _forge(claims: dict, secret: str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _alg_none(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _claims(subject: str, **changes) -> dict:
    now = datetime.now(timezone.utc)
    return {"sub": subject, "iat": now, "exp": now + timedelta(minutes=5), "jti": uuid.uuid4().hex, **changes}


def challenge(response) -> dict[str, str]:
    """The parameters of the response's Bearer challenge (RFC 6750 3), e.g. {"realm": ..., "error": ...}."""
    header = response.headers.get("WWW-Authenticate", "")
    scheme, _, parameters = header.partition(" ")
    assert scheme == "Bearer", f"WWW-Authenticate {header!r} is not a Bearer challenge"
    return dict(re.findall(r'([A-Za-z_]+)="([^"]*)"', parameters))


def assert_refused(response, name: str, *, token: str | None, expired: bool = False,
                   secret: str | None = None) -> None:
    """A 401 UNAUTHORIZED whose challenge follows RFC 6750 3.1 for the bearer token sent.

    `token` None: no bearer token was sent, so no error code; "" (an empty one): either answer.
    """
    assert response.status_code == 401, f"{name}: {response.status_code}"
    problem = response.json()
    assert problem["code"] == "UNAUTHORIZED", name
    parameters = challenge(response)
    if not token:
        assert token == "" or "error" not in parameters, f"{name}: no token was sent, yet {parameters}"
        return
    assert parameters.get("error") == "invalid_token", f"{name}: the challenge {parameters} lacks invalid_token"
    why = parameters.get("error_description", "")
    assert why, f"{name}: no error_description says why the token was refused"
    assert problem["detail"] == why, f"{name}: detail {problem['detail']!r} differs from {why!r}"
    assert ("expire" in why.lower()) == expired, f"{name}: {why!r} does not say why"
    # Nothing a forger could use: no part of the token sent, nothing of the secret.
    for part in [p for p in token.split(".") if len(p) >= 8] + ([secret] if secret else []):
        assert part not in response.text, f"{name}: the answer repeats {part[:12]}..."


def _assert_401(api, headers: dict, name: str, **expected) -> None:
    response = api.get("/api/v1/tasks", headers=headers)
    assert_contract(response, "GET", "/api/v1/tasks")
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    assert_refused(response, name, token=token.strip() if scheme == "Bearer" else None, **expected)


@pytest.mark.check("S4-AC10")
def test_bad_tokens_all_get_401_with_www_authenticate(api, alice):
    claims = _claims(alice.id)
    epoch_claims = {**claims, "iat": int(claims["iat"].timestamp()), "exp": int(claims["exp"].timestamp())}
    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {base64.b64encode(b'a:b').decode()}"},
        "empty bearer": {"Authorization": "Bearer "},
        "malformed": {"Authorization": "Bearer not.a.jwt"},
        "other secret": {"Authorization": f"Bearer {_forge(claims, 'another-secret-' * 4)}"},
        "alg none": {"Authorization": f"Bearer {_alg_none(epoch_claims)}"},
        "tampered": {"Authorization": f"Bearer {alice.token[:-4]}AAAA"},
    }
    for name, headers in cases.items():
        _assert_401(api, headers, name)
    assert api.get("/api/v1/tasks", headers=alice.headers).status_code == 200


@pytest.mark.check("S4-AC10")
def test_with_the_configured_secret_only_valid_claims_are_accepted(api, alice, service):
    """Signed with the service's own secret, so a refusal can only be about the claims."""
    secret = service.env.get("JWT_SECRET")
    if not secret:
        pytest.skip("the service's JWT_SECRET is unknown (TARGET=): expired and jti-less tokens cannot be signed")
    valid = _forge(_claims(alice.id), secret)
    # The control: were this refused, the refusals below would prove nothing about exp or jti.
    assert api.get("/api/v1/tasks", headers={"Authorization": f"Bearer {valid}"}).status_code == 200
    now = datetime.now(timezone.utc)
    expired = _claims(alice.id, iat=now - timedelta(hours=2), exp=now - timedelta(hours=1))
    no_jti = {k: v for k, v in _claims(alice.id).items() if k != "jti"}
    no_exp = {k: v for k, v in _claims(alice.id).items() if k != "exp"}
    for name, claims in {"expired": expired, "no jti": no_jti, "no exp": no_exp}.items():
        _assert_401(api, {"Authorization": f"Bearer {_forge(claims, secret)}"}, name, expired=name == "expired",
                    secret=secret)


@pytest.mark.check("S1-AC12")
def test_no_password_hash_or_token_in_any_response(api, new_account, database):
    account = new_account()
    with database.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users WHERE username = :u"),
                              {"u": account.username}).scalar_one()
    assert stored.startswith("$argon2id$") and account.password not in stored
    task = api.post("/api/v1/tasks", json={"type": "t", "payload": {}}, headers=account.headers).json()
    responses = [
        api.post("/api/v1/users", json={"username": account.username, "password": account.password}),
        api.post("/api/v1/auth/login", json={"username": account.username, "password": account.password + "x"}),
        api.get(f"/api/v1/tasks/{task['id']}", headers=account.headers),
        api.get("/api/v1/tasks", headers=account.headers),
        api.post(f"/api/v1/tasks/{task['id']}/cancel", headers=account.headers),
        api.post("/api/v1/tasks", json={"type": "BAD", "payload": {}}, headers=account.headers),
        api.post("/api/v1/users", json={"username": "x", "password": account.password}),
    ]
    for response in responses:
        for secret in (account.password, stored, account.token, "$argon2"):
            assert secret not in response.text, f"{response.request.method} {response.request.url} leaks a secret"


@pytest.mark.check("S4-AC10")
@pytest.mark.parametrize("route", ["create", "get", "list", "cancel"])
def test_a_valid_token_of_a_user_that_no_longer_exists_gets_401_on_every_route(api, new_account, create_task,
                                                                              database, cache, route):
    account = new_account()
    task = create_task(account)
    with database.engine.begin() as conn:  # the tasks first: the owner foreign key protects them
        owner = {"id": uuid.UUID(account.id).bytes}
        conn.execute(text("DELETE FROM tasks WHERE user_id = :id"), owner)
        conn.execute(text("DELETE FROM users WHERE id = :id"), owner)
    method, path, template = {
        "create": ("POST", "/api/v1/tasks", "/api/v1/tasks"),
        "get": ("GET", f"/api/v1/tasks/{task['id']}", "/api/v1/tasks/{task_id}"),
        "list": ("GET", "/api/v1/tasks", "/api/v1/tasks"),
        "cancel": ("POST", f"/api/v1/tasks/{task['id']}/cancel", "/api/v1/tasks/{task_id}/cancel"),
    }[route]
    body = {"json": {"type": "t", "payload": {}}} if route == "create" else {}
    if route == "get":  # a read the cache answers looks nobody up (README, S4-AC10): this one must reach the database
        evict(cache, account.id, task["id"])
    response = api.request(method, path, headers=account.headers, **body)
    assert response.status_code == 401, \
        f"{route} with the token of a deleted user answered {response.status_code}, not 401: {response.text[:200]}"
    assert_contract(response, method, template)
    assert_refused(response, f"{route} by a deleted user", token=account.token)
