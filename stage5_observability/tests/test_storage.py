"""Ids are UUIDv7 kept as 16 raw bytes: read the raw columns, not the API's rendering."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text


@pytest.mark.check("S1-AC8")
def test_task_and_user_ids_are_sixteen_raw_bytes_of_a_uuid7(alice, create_task, database):
    task = create_task(alice)  # landed: the consumer wrote the row
    task_id, user_id = uuid.UUID(task["id"]), uuid.UUID(alice.id)
    with database.engine.connect() as conn:
        raw_id, length, raw_user = conn.execute(
            text("SELECT id, LENGTH(id), user_id FROM tasks WHERE id = :id"), {"id": task_id.bytes}).one()
        user_length = conn.execute(text("SELECT LENGTH(id) FROM users WHERE id = :id"),
                                   {"id": user_id.bytes}).scalar_one()
    assert (bytes(raw_id), length) == (task_id.bytes, 16)
    assert (bytes(raw_user), user_length) == (user_id.bytes, 16)
    assert task_id.version == 7 and user_id.version == 7


@pytest.mark.check("S1-AC8")
def test_ids_created_later_sort_later_as_raw_bytes(alice, create_task):
    ids = [uuid.UUID(create_task(alice, landed=False)["id"]).bytes for _ in range(10)]
    assert ids == sorted(ids), "UUIDv7 bytes must follow creation order (clustered-index appends)"
