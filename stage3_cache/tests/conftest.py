"""Fixtures for the stage's API: accounts with tokens, and a contract check on every response."""
from __future__ import annotations

import uuid
from functools import cached_property

import pytest

from common.testing.contract import assert_contract


class Account:
    """A user who registers and logs in on first use.

    Lazily, so that against a service without accounts (the increment proof runs stage 1's checks
    against stage 0) the test body fails its assertion instead of the fixture erroring at setup.
    """

    def __init__(self, api) -> None:
        self.api = api
        self._credentials = {"username": f"u{uuid.uuid4().hex[:20]}", "password": f"pw-{uuid.uuid4().hex}"}

    @cached_property
    def _registered(self) -> tuple[str, str]:
        credentials = self._credentials
        created = self.api.post("/api/v1/users", json=credentials)
        assert created.status_code == 201, f"could not register a user: {created.status_code} {created.text[:200]}"
        user = assert_contract(created, "POST", "/api/v1/users")
        login = self.api.post("/api/v1/auth/login", json=credentials)
        assert login.status_code == 200, f"could not log in: {login.status_code} {login.text[:200]}"
        return user["id"], assert_contract(login, "POST", "/api/v1/auth/login")["access_token"]

    @property
    def username(self) -> str:
        self._registered  # noqa: B018 - a test that uses the name expects the user to exist
        return self._credentials["username"]

    @property
    def password(self) -> str:
        self._registered  # noqa: B018
        return self._credentials["password"]

    @property
    def id(self) -> str:
        return self._registered[0]

    @property
    def token(self) -> str:
        return self._registered[1]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def new_account(api):
    """Make a fresh user, registered and logged in on first use; each call makes another."""
    return lambda: Account(api)


@pytest.fixture
def alice(new_account) -> Account:
    """A user whose tasks the tests create and read."""
    return new_account()


@pytest.fixture
def bob(new_account) -> Account:
    """Another user, who must never see alice's tasks."""
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
