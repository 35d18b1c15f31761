"""The SQLAlchemy 2 models; `common/schema/*.sql` is the DDL they must agree with."""
from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, SmallInteger, String, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .ids import BinaryUUID, uuid7
from .timeutil import UtcDateTime, utcnow

# Case-sensitive ASCII for keys a client chooses: "Key" and "key" are two different keys.
AsciiKey = String(255).with_variant(mysql.VARCHAR(255, charset="ascii", collation="ascii_bin"), "mysql", "mariadb")


class TaskStatus(str, enum.Enum):
    PENDING = "PENDING"
    CANCELED = "CANCELED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


CANCELABLE_STATUSES = frozenset({TaskStatus.PENDING})


class Base(DeclarativeBase):
    type_annotation_map = {uuid.UUID: BinaryUUID(), datetime: UtcDateTime()}


def _same_as_created_at(context) -> datetime:
    return context.get_current_parameters()["created_at"]


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A new row's two times are equal; any later UPDATE moves updated_at on.
    updated_at: Mapped[datetime] = mapped_column(default=_same_as_created_at, onupdate=utcnow)


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("username", name="uq_users_username"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    username: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))

    def __repr__(self) -> str:  # never show the hash, even in a debugger
        return f"<User {self.username}>"


class Task(TimestampMixin, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # "This user's tasks, newest first": UUIDv7 ids sort by creation time, so (user_id, id)
        # serves the keyset page `WHERE user_id = ? AND id < ? ORDER BY id DESC` with no filesort.
        Index("ix_tasks_user_id_id", "user_id", "id"),
        Index("ix_tasks_user_id_status_id", "user_id", "status", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", name="fk_tasks_user_id"))
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(SmallInteger, default=5)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.PENDING.value)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", name="fk_idempotency_keys_user_id"), primary_key=True
    )
    idem_key: Mapped[str] = mapped_column(AsciiKey, primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[uuid.UUID | None]
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
