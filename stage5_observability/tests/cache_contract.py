"""What stage 3 documents about its cache (design/cache.md's key space, the timelines), as stage 4 keeps it.

The acceptance tests check the service against these promises, read from outside: the Redis key
of a task, the TTL bands, the lock's key, the invalidation channel, the staleness window after a
cancel, and the bound on a read while Redis hangs. Stage 4 writes a task into the cache when its
create or cancel is accepted (read-your-writes), so a check that needs a cold entry evicts it first.
"""
from __future__ import annotations

import json

from tenacity import Retrying, stop_after_delay, wait_fixed

REDIS_TTL_BAND = (54.0, 66.0)  # CACHE_TTL_SECONDS=60, ±10 % jitter
NEGATIVE_TTL_BAND = (4.5, 5.5)  # CACHE_NEGATIVE_TTL_SECONDS=5, ±10 %
LOCAL_TTL_MAX = 2.2  # CACHE_LOCAL_TTL_SECONDS=2, +10 %
# Stage 4: an accepted create or cancel writes the task's JSON for READ_YOUR_WRITES_TTL_SECONDS=600, ±10 %.
READ_YOUR_WRITES_TTL_BAND = (540.0, 660.0)
# After a cancel returns, no read serves the old status later than this (stage 3's bound, kept by stage 4).
STALENESS_WINDOW = 3.0
# With Redis up, a cancel's invalidation message reaches every process's local level within this.
INVALIDATION_DELIVERY = 1.0
# A read or a cancel while Redis hangs answers within this (one 0.2 s Redis timeout plus the database work).
HANG_BOUND = 1.0


INVALIDATION_CHANNEL = "task:v1:invalidate"  # pub/sub: each message is a task key every process evicts locally


def task_key(user_id: str, task_id: str) -> str:
    return f"task:v1:{user_id}:{task_id}"


def lock_key(user_id: str, task_id: str) -> str:
    return f"lock:{task_key(user_id, task_id)}"


def version_key(user_id: str, task_id: str) -> str:
    """Stage 4: the entry's version, written with it: the task's `updated_at`, which orders its states."""
    return f"version:{task_key(user_id, task_id)}"


def evict(cache, user_id: str, task_id: str) -> None:
    """Drop a task's entry everywhere, as a stage-3 write does: the Redis keys, then every process's local copy."""
    key = task_key(user_id, task_id)
    cache.client.delete(key, version_key(user_id, task_id))
    # Just after a Redis outage the processes may not listen yet; they clear their local level when they do.
    for attempt in Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.05), reraise=True):
        with attempt:
            assert cache.client.publish(INVALIDATION_CHANNEL, key) >= 1, f"no process listens on {INVALIDATION_CHANNEL}"


def cached_task(value: str | None) -> dict | None:
    """The task JSON a positive entry holds; None for anything else (absent, or a negative marker)."""
    if value is None:
        return None
    try:
        document = json.loads(value)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def ttl_seconds(cache, key: str) -> float:
    """The key's remaining time to live in seconds (-2: no such key, -1: no expiry)."""
    ttl = cache.client.pttl(key)
    return ttl / 1000 if ttl >= 0 else float(ttl)
