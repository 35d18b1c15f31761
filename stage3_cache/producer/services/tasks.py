"""Task rules: create, read, list and cancel, each in one unit of work."""
from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from common.errors import InvalidToken, TaskNotCancelable, TaskNotFound, ValidationFailed
from common.models import CANCELABLE_STATUSES, Task, TaskStatus

from ..repositories import tasks
from ..repositories.db import Database
from .task_cache import TaskCache


@dataclass(frozen=True)
class TaskPage:
    items: list[Task]
    next_cursor: str | None


@dataclass(frozen=True)
class TaskRead:
    task: Task
    source: str  # the level that answered: local, redis or miss (the database)


def create_task(*, database: Database, user_id: uuid.UUID, type_: str, payload: dict[str, Any], priority: int) -> Task:
    """Store a new PENDING task and return it."""
    with database.unit_of_work() as session, _owner_must_exist():
        task = tasks.add(session, Task(user_id=user_id, type=type_, payload=payload, priority=priority,
                                       status=TaskStatus.PENDING.value))
        session.commit()
    return task


def get_task(*, database: Database, cache: TaskCache, user_id: uuid.UUID, task_id: uuid.UUID) -> TaskRead:
    """Return the user's task through the cache; raise TaskNotFound for a missing task or another user's."""
    task, source = cache.read(user_id=user_id, task_id=task_id,
                              load=lambda: _load_task(database=database, user_id=user_id, task_id=task_id))
    if task is None:
        raise TaskNotFound()
    return TaskRead(task, source)


def _load_task(*, database: Database, user_id: uuid.UUID, task_id: uuid.UUID) -> Task | None:
    """The user's task from the database, or None."""
    with database.unit_of_work() as session, _owner_must_exist():
        return tasks.get_owned(session, user_id=user_id, task_id=task_id)


def list_tasks(*, database: Database, user_id: uuid.UUID, limit: int, cursor: str | None,
               status: str | None) -> TaskPage:
    """Return one page of the user's tasks, newest first, and the cursor of the next page."""
    before = decode_cursor(cursor) if cursor else None
    with database.unit_of_work() as session, _owner_must_exist():
        rows = tasks.page_owned(session, user_id=user_id, before=before, status=status, limit=limit + 1)
    items = rows[:limit]
    return TaskPage(items, encode_cursor(items[-1].id) if len(rows) > limit else None)


def cancel_task(*, database: Database, cache: TaskCache, user_id: uuid.UUID, task_id: uuid.UUID) -> Task:
    """Move a PENDING task to CANCELED; raise TaskNotCancelable from any other status."""
    with database.unit_of_work() as session, _owner_must_exist():
        canceled = tasks.set_status_if(session, user_id=user_id, task_id=task_id, status=TaskStatus.CANCELED.value,
                                       allowed=[status.value for status in CANCELABLE_STATUSES])
        session.commit()
        task = tasks.get_owned(session, user_id=user_id, task_id=task_id)
    if canceled:
        cache.invalidate(user_id=user_id, task_id=task_id)  # after the commit, never before
    if task is None:
        raise TaskNotFound()
    if not canceled:
        raise TaskNotCancelable(f"The task is {task.status}; only a PENDING task can be canceled.")
    return task


@contextmanager
def _owner_must_exist() -> Iterator[None]:
    """Every task query names its owner; finding no such user answers 401, not 404 or an empty list."""
    try:
        yield
    except tasks.UnknownOwner:
        # A valid signature for a user that no longer exists: the token speaks for nobody.
        raise InvalidToken("The access token's user no longer exists.") from None


def encode_cursor(last_id: uuid.UUID) -> str:
    """An opaque cursor: the last id of the page, base64url without padding."""
    return base64.urlsafe_b64encode(last_id.bytes).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16 or encode_cursor(uuid.UUID(bytes=raw)) != cursor:
        raise ValidationFailed(errors=[{"field": "cursor", "message": "not a cursor this API issued"}])
    return uuid.UUID(bytes=raw)

