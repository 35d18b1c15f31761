"""What stage 3 documents about its cache (STAGE3-NOTES.md, the README's key space and timelines).

The acceptance tests check the service against these promises, read from outside: the Redis key
of a task, the TTL bands, the lock's key, the staleness window after a cancel, and the bound on a
read while Redis hangs.
"""
from __future__ import annotations

import json

REDIS_TTL_BAND = (54.0, 66.0)  # CACHE_TTL_SECONDS=60, ±10 % jitter
NEGATIVE_TTL_BAND = (4.5, 5.5)  # CACHE_NEGATIVE_TTL_SECONDS=5, ±10 %
LOCAL_TTL_MAX = 2.2  # CACHE_LOCAL_TTL_SECONDS=2, +10 %
# After a cancel returns, no read serves the old status later than this (delayed delete 0.5 s + local TTL 2.2 s).
STALENESS_WINDOW = 3.0
DELAYED_DELETE = 0.5  # CACHE_DELAYED_DELETE_MS=500: the second delete after a write
# With Redis up, a cancel's invalidation message reaches every process's local level within this.
INVALIDATION_DELIVERY = 1.0
# A read or a cancel while Redis hangs answers within this (one 0.2 s Redis timeout plus the database work).
HANG_BOUND = 1.0


def task_key(user_id: str, task_id: str) -> str:
    return f"task:v1:{user_id}:{task_id}"


def lock_key(user_id: str, task_id: str) -> str:
    return f"lock:{task_key(user_id, task_id)}"


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
