"""Fixtures for the stage's API: accounts with tokens, tasks that landed, and a contract check on every response."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from functools import cached_property

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from common.testing.contract import assert_contract

# How long a 202 task may take to land (the consumer's batch wait is 100 ms; a loaded machine is slower).
LANDING_SECONDS = 30


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


def listed(api, account: Account, ids: set[str], **params) -> dict[str, dict]:
    """The tasks of `ids` the listing shows (by id), paging newest first until all are found or the pages end."""
    found: dict[str, dict] = {}
    cursor = None
    while True:
        query = {"limit": 100, **params, **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/v1/tasks", params=query, headers=account.headers)
        assert response.status_code == 200, f"the listing answered {response.status_code}: {response.text[:200]}"
        page = assert_contract(response, "GET", "/api/v1/tasks")
        found.update((task["id"], task) for task in page["items"] if task["id"] in ids)
        cursor = page["next_cursor"]
        if cursor is None or len(found) == len(ids):
            return found


@pytest.fixture
def wait_listed(api):
    """Wait until the listing (which reads the database) shows every given task id; return those tasks by id."""

    def wait(account: Account, ids: Iterable[str], *, seconds: float = LANDING_SECONDS, status: str | None = None,
             client=None) -> dict[str, dict]:
        """`client`: another service's client (a launched one); `status`: listed with that status filter."""
        wanted, found = set(ids), {}
        params = {"status": status} if status else {}
        for attempt in Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(0.05), reraise=True):
            with attempt:
                found = listed(client or api, account, wanted, **params)
                missing = sorted(wanted - set(found))
                assert not missing, (f"{len(missing)} of {len(wanted)} accepted tasks not listed"
                                     f"{' as ' + status if status else ''} after {seconds} s (not landed), "
                                     f"e.g. {missing[:3]}")
        return found

    return wait


@pytest.fixture
def create_task(api, wait_listed):
    """Create a task for an account (202) and return its JSON, by default once it has landed in the database."""

    def create(account: Account, landed: bool = True, **fields) -> dict:
        body = {"type": "email.send", "payload": {"to": "someone@example.com"}, **fields}
        response = api.post("/api/v1/tasks", json=body, headers=account.headers)
        assert response.status_code == 202, response.text
        task = assert_contract(response, "POST", "/api/v1/tasks")
        if landed:  # the listing reads the database: once it shows the task, the consumer has landed it
            wait_listed(account, [task["id"]])
        return task

    return create
