"""Broken object-level authorization: one user can never reach another user's task."""
from __future__ import annotations

import pytest

from common.testing.contract import assert_contract


@pytest.mark.check("S1-AC10")
def test_another_user_cannot_read_list_or_cancel_a_task(api, alice, bob, create_task):
    task = create_task(alice)  # landed: bob's reads meet the row, not only an empty table
    read = api.get(f"/api/v1/tasks/{task['id']}", headers=bob.headers)
    assert read.status_code == 404
    assert assert_contract(read, "GET", "/api/v1/tasks/{task_id}")["code"] == "TASK_NOT_FOUND"
    listed = api.get("/api/v1/tasks", params={"limit": 100}, headers=bob.headers).json()
    assert task["id"] not in {t["id"] for t in listed["items"]}
    cancel = api.post(f"/api/v1/tasks/{task['id']}/cancel", headers=bob.headers)
    assert cancel.status_code == 404
    assert assert_contract(cancel, "POST", "/api/v1/tasks/{task_id}/cancel")["code"] == "TASK_NOT_FOUND"
    assert api.get(f"/api/v1/tasks/{task['id']}", headers=alice.headers).json() == task, "the task changed"


@pytest.mark.check("S1-AC10")
def test_a_cursor_from_one_user_reveals_nothing_to_another(api, alice, bob, create_task, wait_listed):
    wait_listed(alice, [create_task(alice, landed=False)["id"] for _ in range(3)])
    cursor = api.get("/api/v1/tasks", params={"limit": 1}, headers=alice.headers).json()["next_cursor"]
    page = api.get("/api/v1/tasks", params={"cursor": cursor}, headers=bob.headers)
    assert page.status_code == 200 and page.json()["items"] == []
