"""SQL for users."""
from __future__ import annotations

import uuid

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.models import User


class DuplicateUsername(Exception):
    """The unique index on users.username refused the row."""


def add(session: Session, user: User) -> User:
    """Insert a user now (flush), so a duplicate username is known before commit."""
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        raise DuplicateUsername(user.username) from exc
    return user


def by_username(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).one_or_none()


# Built once: every create and cancel runs it, and building the statement and its cache key (which
# finds the compiled SQL) on each call took about 35 µs of CPU (design/benchmark.md).
_EXISTS = select(User.id).where(User.id == bindparam("user_id"))


def exists(connection: Connection, user_id: uuid.UUID) -> bool:
    """One primary-key read: whether `user_id` names a user."""
    return connection.scalar(_EXISTS, {"user_id": user_id}) is not None
