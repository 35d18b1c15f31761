"""SQL for tasks. Every query is scoped to its owner, so no caller can read across users."""
from __future__ import annotations

import uuid

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from common.models import Task, User


class UnknownOwner(Exception):
    """`user_id` names no user (any more): a valid token of a deleted account, say."""


def get_owned(session: Session, *, user_id: uuid.UUID, task_id: uuid.UUID) -> Task | None:
    """The task if it exists and belongs to `user_id`; another user's task is indistinguishable from none.

    Raises UnknownOwner if `user_id` names no user. One query, not two: the owner's row is read
    by primary key and the task outer-joined to it, so "no user" (no row) and "no such task"
    (a row without a task) come back from the same round trip.
    """
    row = session.execute(
        select(User.id, Task).select_from(User)
        .outerjoin(Task, and_(Task.user_id == User.id, Task.id == task_id))
        .where(User.id == user_id)
    ).one_or_none()
    if row is None:
        raise UnknownOwner(str(user_id))
    return row.Task


def page_owned(session: Session, *, user_id: uuid.UUID, before: uuid.UUID | None, status: str | None,
               limit: int) -> list[Task]:
    """Up to `limit` tasks of `user_id`, newest first, strictly older than `before` (keyset pagination).

    UUIDv7 ids sort by creation time, so `id < before ORDER BY id DESC` walks (user_id, [status,] id)
    indexes backwards; unlike OFFSET, its cost does not grow with the page number, and rows inserted
    meanwhile (always newer) can never shift a later page.

    Raises UnknownOwner if `user_id` names no user. Only an empty page can hide that, so only then
    is the owner looked up (one primary-key read): outer-joining the tasks to the owner's row, as
    get_owned does, would make MySQL sort the user's whole task list instead of walking the index.
    """
    query = select(Task).where(Task.user_id == user_id)
    if status is not None:
        query = query.where(Task.status == status)
    if before is not None:
        query = query.where(Task.id < before)
    page = list(session.scalars(query.order_by(Task.id.desc()).limit(limit)))
    if not page and session.get(User, user_id) is None:
        raise UnknownOwner(str(user_id))
    return page
