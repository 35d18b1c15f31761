"""Redis, the shared cache level: the key space, the stored values, and every Redis call, each with a timeout.

Key space (version `v1`, so a change of value format can never read old entries):
  task:v1:{user_id}:{task_id}        the task's public fields as JSON (encode), or NEGATIVE for "no such task for
                                     this user"
  lock:task:v1:{user_id}:{task_id}   the single-flight lock of that entry: a random token, SET NX PX
  channel task:v1:invalidate         pub/sub: each message is a task key every process evicts locally
The owner is part of every key, so one user's entries (found or not) can never answer another user.
"""
from __future__ import annotations

import json
import secrets
import uuid
from datetime import datetime
from typing import Any

import redis
from loguru import logger
from redis.backoff import NoBackoff
from redis.retry import Retry

from common.connections import first_line, mask_url
from common.models import Task
from common.timeutil import rfc3339

NEGATIVE = "!not-found"  # never valid JSON of a task, so it cannot be mistaken for one
INVALIDATION_CHANNEL = "task:v1:invalidate"
# Deletes the lock only if it still holds our token: a holder whose lock expired must not free another's.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def task_key(user_id: uuid.UUID, task_id: uuid.UUID) -> str:
    return f"task:v1:{user_id}:{task_id}"


def lock_key(key: str) -> str:
    return f"lock:{key}"


def document(task: Task) -> dict[str, Any]:
    """The fields the API shows, as the API shows them: what an entry holds."""
    return {"id": str(task.id), "type": task.type, "payload": task.payload, "priority": task.priority,
            "status": task.status, "created_at": rfc3339(task.created_at), "updated_at": rfc3339(task.updated_at)}


def from_document(fields: dict[str, Any], *, user_id: uuid.UUID) -> Task:
    """The task a document holds: a Task that no session has seen, so nothing ever writes it back."""
    return Task(id=uuid.UUID(fields["id"]), user_id=user_id, type=fields["type"], payload=fields["payload"],
                priority=fields["priority"], status=fields["status"],
                created_at=datetime.fromisoformat(fields["created_at"]),
                updated_at=datetime.fromisoformat(fields["updated_at"]))


def encode(task: Task | None) -> str:
    """A task's entry (the owner is in the key)."""
    return NEGATIVE if task is None else json.dumps(document(task), separators=(",", ":"), ensure_ascii=False)


def decode(value: str, *, user_id: uuid.UUID) -> Task | None:
    return None if value == NEGATIVE else from_document(json.loads(value), user_id=user_id)


class RedisCache:
    """An app's Redis client, built by its runtime: in each gunicorn worker, after the fork."""

    def __init__(self, *, url: str, timeout_ms: int) -> None:
        seconds = timeout_ms / 1000
        # One attempt, short timeouts: a dead or hung Redis costs a request at most one timeout, never a retry loop.
        self.client = redis.Redis.from_url(url, socket_connect_timeout=seconds, socket_timeout=seconds,
                                           retry=Retry(NoBackoff(), 0), decode_responses=True)
        logger.info("cache configured", url=mask_url(url), timeout_ms=timeout_ms)

    def close(self) -> None:
        """Close the client's pooled connections."""
        self.client.close()

    def session(self) -> "CacheSession":
        """A guard for one request: after the first Redis failure, every later call is skipped."""
        return CacheSession(self.client)

    def ping(self) -> None:
        """Raise unless Redis answers."""
        self.session().call("ping", lambda c: c.ping(), strict=True)


class CacheSession:
    """Redis calls for one request. A failed call answers None (a miss) instead of raising."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.up = True

    def call(self, what: str, operation, *, strict: bool = False):
        if not self.up:
            return None
        try:
            return operation(self.client)
        except redis.RedisError as exc:  # refused (down) and TimeoutError (hung) alike: skip Redis from now on
            self.up = False
            logger.warning("cache unavailable", operation=what, error=first_line(exc))
            if strict:
                raise
            return None

    def get(self, key: str) -> str | None:
        return self.call("get", lambda c: c.get(key))

    def set(self, key: str, value: str, *, ttl_ms: int) -> None:
        self.call("set", lambda c: c.set(key, value, px=ttl_ms))

    def delete(self, key: str) -> bool:
        """Delete the key; False if Redis could not be asked (the caller may retry later)."""
        return self.call("delete", lambda c: c.delete(key)) is not None

    def publish(self, channel: str, message: str) -> None:
        self.call("publish", lambda c: c.publish(channel, message))

    def try_lock(self, key: str, *, ttl_ms: int) -> str | None:
        """Take the key's lock; return its token, or None if another holds it or Redis failed."""
        token = secrets.token_hex(16)
        return token if self.call("lock", lambda c: c.set(lock_key(key), token, nx=True, px=ttl_ms)) else None

    def unlock(self, key: str, token: str) -> None:
        self.call("unlock", lambda c: c.eval(_RELEASE, 1, lock_key(key), token))

