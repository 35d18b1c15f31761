"""Landing events in the database: one transaction per batch, and nothing changes when an event comes again."""
from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.dialects import mysql, sqlite

from common.models import IdempotencyKey, Task, TaskStatus, User
from common.timeutil import utcnow

from ..shared.events import Event, TaskCanceled, TaskCreated

TASKS, KEYS, USERS = Task.__table__, IdempotencyKey.__table__, User.__table__

# Only a PENDING task can be canceled, so a cancel delivered again (or racing another) changes nothing.
_CANCEL = (update(TASKS)
           .where(TASKS.c.id == bindparam("b_id"), TASKS.c.user_id == bindparam("b_user"),
                  TASKS.c.status == TaskStatus.PENDING.value)
           .values(status=TaskStatus.CANCELED.value, updated_at=bindparam("b_at")))
# An expired key may be reused by its owner: its old row goes, so the new request's row can take its place.
_DELETE_EXPIRED_KEY = delete(KEYS).where(KEYS.c.user_id == bindparam("b_user"), KEYS.c.idem_key == bindparam("b_key"),
                                         KEYS.c.expires_at < bindparam("b_now"))


def land(conn: Connection, events: Sequence[Event]) -> dict[int, str]:
    """Write `events` in the caller's transaction; return {index: reason} for those that cannot land.

    Creates go first (a cancel always follows its create on the same partition, maybe in this batch);
    a create of an unknown user and a cancel of an unknown task are refused, the rest still land.
    """
    refused: dict[int, str] = {}
    creates = [(i, e) for i, e in enumerate(events) if isinstance(e, TaskCreated)]
    cancels = [(i, e) for i, e in enumerate(events) if isinstance(e, TaskCanceled)]
    if creates:
        # Checked up front: a foreign-key failure would fail the whole statement, and with it the batch.
        users = _existing(conn, USERS, {e.row["user_id"] for _, e in creates})
        refused.update((i, f"unknown user {e.row['user_id']}") for i, e in creates if e.row["user_id"] not in users)
        landing = [e for i, e in creates if i not in refused]
        if landing:
            conn.execute(_insert_ignoring_duplicates(conn, TASKS), [e.row for e in landing])
        keys = [e.idempotency for e in landing if e.idempotency is not None]
        if keys:
            now = utcnow()
            conn.execute(_DELETE_EXPIRED_KEY, [{"b_user": k["user_id"], "b_key": k["idem_key"], "b_now": now}
                                               for k in keys])
            conn.execute(_insert_ignoring_duplicates(conn, KEYS), keys)
    if cancels:
        owners = dict(conn.execute(select(TASKS.c.id, TASKS.c.user_id)
                                   .where(TASKS.c.id.in_({e.task_id for _, e in cancels}))).all())
        # Kept for a replay once its create has landed (the DLQ tool), rather than dropped.
        refused.update((i, f"unknown task {e.task_id}") for i, e in cancels if owners.get(e.task_id) != e.user_id)
        known = [e for i, e in cancels if i not in refused]
        if known:
            conn.execute(_CANCEL, [{"b_id": e.task_id, "b_user": e.user_id, "b_at": e.updated_at} for e in known])
    return refused


def _existing(conn: Connection, table, ids: set[uuid.UUID]) -> set[uuid.UUID]:
    return set(conn.scalars(select(table.c.id).where(table.c.id.in_(ids))))


def _insert_ignoring_duplicates(conn: Connection, table):
    """INSERT that skips a row whose primary key exists: the row already landed, and stays as it is."""
    if conn.dialect.name in ("mysql", "mariadb"):
        # Not INSERT IGNORE: that would also turn a foreign-key or data error into a warning and a lost row.
        statement = mysql.insert(table)
        first_key = table.primary_key.columns.values()[0]
        return statement.on_duplicate_key_update({first_key.name: first_key})
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"no duplicate-ignoring insert for {conn.dialect.name}")
