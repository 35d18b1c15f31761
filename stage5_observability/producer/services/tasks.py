"""Task rules: create and cancel publish an event and wait for the broker; read and list as before."""
from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from loguru import logger
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from common.errors import InvalidToken, TaskNotCancelable, TaskNotFound, ValidationFailed
from common.ids import uuid7, uuid7_time_ms
from common.models import CANCELABLE_STATUSES, Task, TaskStatus
from common.timeutil import utcnow

from ..repositories import tasks, users
from ..repositories.broker import Broker
from ..repositories.cache import CacheSession
from ..repositories.db import Database
from ...shared import events
from .idempotency import Idempotency
from .task_cache import TaskCache

# How long a create or cancel waits for its landing when Redis cannot hold the accepted state.
LANDING_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class TaskPage:
    items: list[Task]
    next_cursor: str | None


@dataclass(frozen=True)
class TaskRead:
    task: Task
    source: str  # the level that answered: local, redis or miss (the database)


@dataclass(frozen=True)
class Accepted:
    """A create or cancel the broker acknowledged (or the replay of one).

    The status is the service's to say, not the handler's: an Idempotency-Key stores the status of its
    answer with it, and a replay answers that status.
    """

    status_code: int  # 202, or whatever the first request with this Idempotency-Key was answered
    task: Task  # the task as accepted: PENDING for a create, CANCELED for a cancel
    replayed: bool = False  # the answer of an earlier request with the same Idempotency-Key


def create_task(*, database: Database, cache: TaskCache, broker: Broker, idempotency: Idempotency,
                user_id: uuid.UUID, type_: str, payload: dict[str, Any], priority: int,
                idempotency_key: str | None = None, request_id: str | None = None) -> Accepted:
    """Publish a new PENDING task and return it once the broker acknowledged it (or replay a keyed retry)."""
    _owner_must_exist_now(database, user_id)
    redis = cache.session()  # one for the whole request: a hung Redis costs it one timeout, not one per call
    with idempotency.guard(session=redis, user_id=user_id, key=idempotency_key,
                           request={"type": type_, "payload": payload, "priority": priority}) as key:
        if key.replay:
            return Accepted(key.replay.status_code, key.replay.task, replayed=True)
        now = utcnow()
        task = key.earlier_task or Task(id=uuid7(), user_id=user_id, type=type_, payload=payload, priority=priority,
                                        status=TaskStatus.PENDING.value, created_at=now, updated_at=now)
        record = key.record(status_code=202, task=task)
        # A keyed retry may republish a task that has landed and moved on since: any landed status will do.
        _accept(database=database, cache=cache, broker=broker, session=redis, task=task,
                event=events.created(task=task, idempotency=record),
                headers=events.headers(events.CREATED, request_id=request_id), landed_status=None)
    return Accepted(202, task)


def _accept(*, database: Database, cache: TaskCache, broker: Broker, session: CacheSession, task: Task,
            event: bytes, headers: events.Headers, landed_status: str | None,
            undo: Callable[[], None] = lambda: None) -> None:
    """Publish a create's or a cancel's event, then make the accepted state readable at once.

    `undo` runs if the broker did not acknowledge (the 503 follows); after the ack, the cache holds the
    new state (read-your-writes), or, if Redis could not take it, the request waits until the task has
    landed, in `landed_status` if given.
    """
    try:
        # The task id is the key: all of a task's events land on one partition, in the order accepted.
        broker.publish(key=str(task.id), value=event, headers=headers)
    except BaseException:
        undo()
        raise
    if not cache.remember(session=session, task=task):
        _wait_until_landed(database, user_id=task.user_id, task_id=task.id, status=landed_status)


def get_task(*, database: Database, cache: TaskCache, user_id: uuid.UUID, task_id: uuid.UUID,
             session: CacheSession | None = None) -> TaskRead:
    """Return the user's task through the cache; raise TaskNotFound for a missing task or another user's.

    `session`: the Redis session of the request this read is part of (a cancel's), else a new one.
    """
    task, source = cache.read(session=session or cache.session(), user_id=user_id, task_id=task_id,
                              load=lambda: _load_task_in_flight(database, user_id=user_id, task_id=task_id))
    if task is None:
        raise TaskNotFound()
    return TaskRead(task, source)


def _load_task_in_flight(database: Database, *, user_id: uuid.UUID, task_id: uuid.UUID) -> Task | None:
    """The task from the database; for an id minted moments ago, wait (boundedly) for the consumer to land it.

    A read reaches the database when no cache level has the task: normally because it landed long
    ago, but also when Redis lost the accepted entry (down, restarted) while the event is still on its
    way. A UUIDv7 carries its creation time, so only an id younger than LANDING_WAIT_SECONDS is waited
    for; an older one that is missing is simply not found.
    """
    task = _load_task(database, user_id=user_id, task_id=task_id)
    age = time.time() - uuid7_time_ms(task_id) / 1000
    if task is not None or task_id.version != 7 or not 0 <= age < LANDING_WAIT_SECONDS:
        return task
    _wait_until_landed(database, user_id=user_id, task_id=task_id, seconds=LANDING_WAIT_SECONDS - age)
    return _load_task(database, user_id=user_id, task_id=task_id)


def _load_task(database: Database, *, user_id: uuid.UUID, task_id: uuid.UUID) -> Task | None:
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


def cancel_task(*, database: Database, cache: TaskCache, broker: Broker, user_id: uuid.UUID, task_id: uuid.UUID,
                request_id: str | None = None) -> Accepted:
    """Publish the cancel of a PENDING task and return it CANCELED; raise TaskNotCancelable from any other status."""
    _owner_must_exist_now(database, user_id)  # a write on behalf of a deleted user is refused even if cached
    redis = cache.session()  # one for the whole request: a hung Redis costs it one timeout, not one per call
    # The cache first: the task may not have landed yet.
    current = get_task(database=database, cache=cache, session=redis, user_id=user_id, task_id=task_id).task
    if current.status not in {status.value for status in CANCELABLE_STATUSES}:
        raise TaskNotCancelable(f"The task is {current.status}; only a PENDING task can be canceled.")
    won, token = cache.claim_cancel(session=redis, user_id=user_id, task_id=task_id)
    if not won:  # a racing cancel claimed it first: it publishes, this one sees the task as CANCELED
        raise TaskNotCancelable("The task is CANCELED; only a PENDING task can be canceled.")
    now = utcnow()
    canceled = Task(id=current.id, user_id=user_id, type=current.type, payload=current.payload,
                    priority=current.priority, status=TaskStatus.CANCELED.value, created_at=current.created_at,
                    updated_at=now)
    _accept(database=database, cache=cache, broker=broker, session=redis, task=canceled,
            event=events.canceled(task_id=task_id, user_id=user_id, at=now),
            headers=events.headers(events.CANCELED, request_id=request_id),
            undo=lambda: cache.release_cancel(session=redis, user_id=user_id, task_id=task_id, token=token),
            landed_status=canceled.status)
    return Accepted(202, canceled)


def _wait_until_landed(database: Database, *, user_id: uuid.UUID, task_id: uuid.UUID, status: str | None = None,
                       seconds: float = LANDING_WAIT_SECONDS) -> None:
    """Wait (boundedly) until the consumer has landed the task, in `status` if given; the database is the fallback.

    The broker has the event, so the answer stays 202 whatever happens here; a Redis outage costs
    the create or cancel the consumer's lag (milliseconds) instead of costing the next read a 404.
    """
    def landed() -> bool:
        task = _load_task(database, user_id=user_id, task_id=task_id)
        return task is not None and status in (None, task.status)

    try:
        Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(0.02),
                 retry=retry_if_result(lambda done: not done))(landed)
    except RetryError:
        logger.warning("not landed in time for read-your-writes without Redis", task_id=str(task_id), status=status)


def _owner_must_exist_now(database: Database, user_id: uuid.UUID) -> None:
    """Creates and cancels touch no table, so ask for the owner: a deleted user's token speaks for nobody (401)."""
    if not database.autocommit_read(lambda connection: users.exists(connection, user_id)):
        raise InvalidToken("The access token's user no longer exists.")


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

