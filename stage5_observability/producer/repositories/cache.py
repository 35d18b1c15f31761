"""Redis, the shared cache level: the key space, the stored values, and every Redis call, each with a timeout.

Key space (version `v1`, so a change of value format can never read old entries):
  task:v1:{user_id}:{task_id}           the task's public fields as JSON (encode), or NEGATIVE for "no such
                                        task for this user"
  lock:task:v1:{user_id}:{task_id}      the single-flight lock of that entry: a random token, SET NX PX
  version:task:v1:{user_id}:{task_id}   stage 4: that entry's version, its `updated_at` ("" for NEGATIVE), same TTL
  channel task:v1:invalidate            pub/sub: each message is a task key every process evicts locally
  cancel:v1:{user_id}:{task_id}         stage 4: the claim of the one cancel that publishes (SET NX EX)
  idem:v1:{user_id}:{sha256(key)}       stage 4: an Idempotency-Key's claim or answer (repositories/idempotency.py)
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
from prometheus_client import Counter
from redis.backoff import NoBackoff
from redis.retry import Retry

from common.connections import first_line, mask_url
from common.models import Task
from common.timeutil import rfc3339

NEGATIVE = "!not-found"  # never valid JSON of a task, so it cannot be mistaken for one
INVALIDATION_CHANNEL = "task:v1:invalidate"
# Deletes the lock only if it still holds our token: a holder whose lock expired must not free another's.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
# Replaces the key's value only if it is still the one we read: a compare-and-swap.
_SWAP = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'ex', ARGV[3]) return 1 end return 0"
# Writes a task's JSON unless the stored one is newer: a read that loaded the database before a cancel, or a
# retried write, must never put an older state back. The version is kept in a key of its own beside the
# entry, never read out of the JSON, so the document's fields and their order are free to change.
# RFC 3339 UTC strings of one format sort as their times do, and a negative entry ("") is older than
# any task. Given a channel, it also publishes the key there, in the same round trip.
_SET_IF_NEWER = """
local stored = redis.call('get', KEYS[2])
if stored and stored > ARGV[2] then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[3])
redis.call('set', KEYS[2], ARGV[2], 'px', ARGV[3])
if ARGV[4] then redis.call('publish', ARGV[4], KEYS[1]) end
return 1
"""


def task_key(user_id: uuid.UUID, task_id: uuid.UUID) -> str:
    return f"task:v1:{user_id}:{task_id}"


def cancel_key(user_id: uuid.UUID, task_id: uuid.UUID) -> str:
    return f"cancel:v1:{user_id}:{task_id}"


def lock_key(key: str) -> str:
    return f"lock:{key}"


def version_key(key: str) -> str:
    return f"version:{key}"


def document(task: Task) -> dict[str, Any]:
    """The fields the API shows, as the API shows them: what an entry holds, and an Idempotency-Key's answer."""
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


def version(task: Task | None) -> str:
    """What orders two states of one task's entry: its `updated_at` ("" for "not found")."""
    return "" if task is None else rfc3339(task.updated_at)


class RedisCache:
    """An app's Redis client, built by its runtime: in each gunicorn worker, after the fork."""

    def __init__(self, *, url: str, timeout_ms: int, errors: Counter) -> None:
        seconds = timeout_ms / 1000
        self.errors = errors  # failed calls by kind: timeout (a hung Redis), connection (a down one), other
        # One attempt, short timeouts: a dead or hung Redis costs a request at most one timeout, never a retry loop.
        self.client = redis.Redis.from_url(url, socket_connect_timeout=seconds, socket_timeout=seconds,
                                           retry=Retry(NoBackoff(), 0), decode_responses=True)
        logger.info("cache configured", url=mask_url(url), timeout_ms=timeout_ms)

    def close(self) -> None:
        """Close the client's pooled connections."""
        self.client.close()

    def session(self) -> "CacheSession":
        """A guard for one request: after the first Redis failure, every later call is skipped."""
        return CacheSession(self.client, self.errors)

    def ping(self) -> None:
        """Raise unless Redis answers."""
        self.session().call("ping", lambda c: c.ping(), strict=True)


class CacheSession:
    """Redis calls for one request. A failed call answers None (a miss) instead of raising."""

    def __init__(self, client: redis.Redis, errors: Counter) -> None:
        self.client, self.errors = client, errors
        self.up = True

    def call(self, what: str, operation, *, strict: bool = False):
        if not self.up:
            return None
        try:
            return operation(self.client)
        except redis.RedisError as exc:  # refused (down) and TimeoutError (hung) alike: skip Redis from now on
            self.up = False
            self.errors.labels(_kind(exc)).inc()
            logger.warning("cache unavailable", operation=what, error=first_line(exc))
            if strict:
                raise
            return None

    def get(self, key: str) -> str | None:
        return self.call("get", lambda c: c.get(key))

    def set(self, key: str, value: str, *, ttl_ms: int) -> None:
        self.call("set", lambda c: c.set(key, value, px=ttl_ms))

    def set_if_newer(self, key: str, task: Task | None, *, ttl_ms: int,
                     announce_on: str | None = None) -> bool | None:
        """Store the entry unless Redis holds a newer one: True if stored, False if not, None if Redis failed.

        With `announce_on`, a stored key is also published on that channel.
        """
        args = (encode(task), version(task), ttl_ms) + ((announce_on,) if announce_on else ())
        stored = self.call("set", lambda c: c.eval(_SET_IF_NEWER, 2, key, version_key(key), *args))
        return None if not self.up else bool(stored)

    def delete(self, key: str) -> bool:
        """Delete the key; False if Redis could not be asked (the caller may retry later)."""
        return self.call("delete", lambda c: c.delete(key)) is not None

    def try_lock(self, key: str, *, ttl_ms: int) -> str | None:
        """Take the key's lock; return its token, or None if another holds it or Redis failed."""
        token = secrets.token_hex(16)
        return token if self.call("lock", lambda c: c.set(lock_key(key), token, nx=True, px=ttl_ms)) else None

    def unlock(self, key: str, token: str) -> None:
        self.call("unlock", lambda c: c.eval(_RELEASE, 1, lock_key(key), token))

    def claim(self, key: str, value: str, *, ttl_seconds: int) -> bool | None:
        """SET NX EX: True if this call took the key, False if it was taken, None if Redis failed."""
        taken = self.call("claim", lambda c: c.set(key, value, nx=True, ex=ttl_seconds))
        return None if not self.up else bool(taken)

    def swap(self, key: str, expected: str, value: str, *, ttl_seconds: int) -> bool | None:
        """Set `value` only if the key still holds `expected`: True if swapped, False if not, None if Redis failed."""
        swapped = self.call("swap", lambda c: c.eval(_SWAP, 1, key, expected, value, ttl_seconds))
        return None if not self.up else bool(swapped)

    def release(self, key: str, value: str) -> None:
        """Delete the key only if it still holds `value`: a claim that expired and was re-taken stays."""
        self.call("release", lambda c: c.eval(_RELEASE, 1, key, value))


def _kind(error: redis.RedisError) -> str:
    # A hung Redis (or a connect that hangs) raises TimeoutError; a down one, ConnectionError (refused).
    if isinstance(error, redis.TimeoutError):
        return "timeout"
    return "connection" if isinstance(error, redis.ConnectionError) else "other"
