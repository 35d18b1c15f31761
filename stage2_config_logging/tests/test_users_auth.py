"""Registration, login, and what a token must be to be accepted."""
from __future__ import annotations

import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from sqlalchemy import text

from common.testing.contract import assert_contract


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


@pytest.mark.check("S1-AC11")
def test_bad_tokens_all_get_401_with_www_authenticate(api, alice, service):
    now = datetime.now(timezone.utc)
    claims = {"sub": alice.id, "iat": now, "exp": now + timedelta(minutes=5), "jti": uuid.uuid4().hex}
    epoch_claims = {**claims, "iat": int(now.timestamp()), "exp": int((now + timedelta(minutes=5)).timestamp())}
    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {base64.b64encode(b'a:b').decode()}"},
        "empty bearer": {"Authorization": "Bearer "},
        "malformed": {"Authorization": "Bearer not.a.jwt"},
        "other secret": {"Authorization": f"Bearer {_forge(claims, 'another-secret-' * 4)}"},
        "alg none": {"Authorization": f"Bearer {_alg_none(epoch_claims)}"},
        "tampered": {"Authorization": f"Bearer {alice.token[:-4]}AAAA"},
    }
    secret = service.env.get("JWT_SECRET")
    if secret:  # only the harness that started the service knows its secret
        expired = {**claims, "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1)}
        cases["expired"] = {"Authorization": f"Bearer {_forge(expired, secret)}"}
        cases["no jti"] = {"Authorization": f"Bearer {_forge({k: v for k, v in claims.items() if k != 'jti'}, secret)}"}
    for name, headers in cases.items():
        response = api.get("/api/v1/tasks", headers=headers)
        assert response.status_code == 401, name
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), name
        assert assert_contract(response, "GET", "/api/v1/tasks")["code"] == "UNAUTHORIZED", name
    assert api.get("/api/v1/tasks", headers=alice.headers).status_code == 200


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


@pytest.mark.check("S1-AC11")
def test_a_valid_token_of_a_user_that_no_longer_exists_gets_401(api, new_account, database):
    account = new_account()
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": uuid.UUID(account.id).bytes})
    response = api.post("/api/v1/tasks", json={"type": "t", "payload": {}}, headers=account.headers)
    assert response.status_code == 401
    assert assert_contract(response, "POST", "/api/v1/tasks")["code"] == "UNAUTHORIZED"
