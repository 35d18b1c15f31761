"""SQL for tasks. Every query is scoped to its owner, so no caller can read across users."""
from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.models import Task


def add(session: Session, task: Task) -> Task:
    session.add(task)
    session.flush()
    return task


def get_owned(session: Session, *, user_id: uuid.UUID, task_id: uuid.UUID, for_update: bool = False) -> Task | None:
    """The task if it exists and belongs to `user_id`; another user's task is indistinguishable from none."""
    query = select(Task).where(Task.id == task_id, Task.user_id == user_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def page_owned(session: Session, *, user_id: uuid.UUID, before: uuid.UUID | None, status: str | None,
               limit: int) -> list[Task]:
    """Up to `limit` tasks of `user_id`, newest first, strictly older than `before` (keyset pagination).

    UUIDv7 ids sort by creation time, so `id < before ORDER BY id DESC` walks (user_id, [status,] id)
    indexes backwards; unlike OFFSET, its cost does not grow with the page number, and rows inserted
    meanwhile (always newer) can never shift a later page.
    """
    query = select(Task).where(Task.user_id == user_id)
    if status is not None:
        query = query.where(Task.status == status)
    if before is not None:
        query = query.where(Task.id < before)
    return list(session.scalars(query.order_by(Task.id.desc()).limit(limit)))
