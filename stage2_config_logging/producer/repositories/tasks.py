"""SQL for tasks. Every query is scoped to its owner, so no caller can read across users."""
from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.models import Task
from common.timeutil import utcnow


class UnknownOwner(Exception):
    """The foreign key on tasks.user_id refused the row: that user does not exist (any more)."""


def add(session: Session, task: Task) -> Task:
    session.add(task)
    try:
        session.flush()
    except IntegrityError as exc:
        raise UnknownOwner(str(task.user_id)) from exc
    return task


def get_owned(session: Session, *, user_id: uuid.UUID, task_id: uuid.UUID) -> Task | None:
    """The task if it exists and belongs to `user_id`; another user's task is indistinguishable from none."""
    return session.scalars(select(Task).where(Task.id == task_id, Task.user_id == user_id)).one_or_none()


def set_status_if(session: Session, *, user_id: uuid.UUID, task_id: uuid.UUID, allowed: Iterable[str],
                  status: str) -> bool:
    """Compare-and-set: move the task to `status` only if its current status is in `allowed`.

    One conditional UPDATE is atomic on every database, SQLite included (which has no
    SELECT ... FOR UPDATE), so of two racing cancels exactly one wins.
    """
    result = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.user_id == user_id, Task.status.in_(list(allowed)))
        .values(status=status, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


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
