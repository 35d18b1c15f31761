"""Fixtures for the stage's API: accounts with tokens, and a contract check on every response."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from common.testing.contract import assert_contract


@dataclass
class Account:
    username: str
    password: str
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def new_account(api):
    """Register and log in a fresh user; each call makes another."""

    def make() -> Account:
        username, password = f"u{uuid.uuid4().hex[:20]}", f"pw-{uuid.uuid4().hex}"
        created = api.post("/api/v1/users", json={"username": username, "password": password})
        user = assert_contract(created, "POST", "/api/v1/users")
        assert created.status_code == 201, created.text
        login = api.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert login.status_code == 200, login.text
        return Account(username, password, user["id"], assert_contract(login, "POST", "/api/v1/auth/login")["access_token"])

    return make


@pytest.fixture
def alice(new_account) -> Account:
    return new_account()


@pytest.fixture
def bob(new_account) -> Account:
    return new_account()


@pytest.fixture
def create_task(api):
    """Create a task for an account and return its JSON."""

    def create(account: Account, **fields) -> dict:
        body = {"type": "email.send", "payload": {"to": "someone@example.com"}, **fields}
        response = api.post("/api/v1/tasks", json=body, headers=account.headers)
        assert response.status_code == 201, response.text
        return assert_contract(response, "POST", "/api/v1/tasks")

    return create
