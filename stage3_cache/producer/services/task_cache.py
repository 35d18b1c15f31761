"""Cache-aside for task reads: the local LRU, then Redis, then the database; and invalidation after a write.

Read: local hit -> done. Else one thread per key in this process (single flight) asks Redis; on a
miss it takes the key's Redis lock (one loader across processes and instances), loads from the
database, and fills Redis and the local level; a process that finds the lock taken polls Redis for
the value until the lock's expiry, then takes over. A miss is cached too, as a short negative entry.
Write: the database first, then delete the entry everywhere, then delete it again after a delay.
"""
from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable

from common.models import Task

from ..config import Settings
from ..repositories.cache import INVALIDATION_CHANNEL, RedisCache, decode, encode, task_key
from ..repositories.invalidation import DelayedDeletes, Subscriber
from ..repositories.local_cache import ABSENT, LocalCache, SingleFlight

# What answered a read (the X-Cache header): this process's memory, Redis, or the database.
LOCAL, REDIS, MISS = "local", "redis", "miss"
LOCK_POLL_SECONDS = 0.02
Entry = Task | None  # what a level holds for a key; None is "no such task for this user"


class TaskCache:
    """The two cache levels of task reads, and their threads: one per app, built by its runtime, closed with it."""

    def __init__(self, *, redis: RedisCache, settings: Settings) -> None:
        self.redis, self.settings = redis, settings
        self.local = LocalCache(max_entries=settings.cache_local_max_entries)
        self.flights = SingleFlight(wait_seconds=settings.cache_lock_ttl_ms / 1000 + 15)
        redis_ttl_max = settings.cache_ttl_seconds * (1 + settings.cache_ttl_jitter)
        self.delayed = DelayedDeletes(delete=self._evict_everywhere, retry_seconds=0.5, give_up_seconds=redis_ttl_max)
        self.subscriber = Subscriber(redis.client, channel=INVALIDATION_CHANNEL, evict=self.local.evict,
                                     clear=self.local.clear)

    def close(self) -> None:
        """Stop the subscriber and the delayed deletes, and wait for their threads."""
        self.subscriber.stop()
        self.delayed.stop()

    def jittered(self, seconds: float) -> float:
        """A TTL spread uniformly over seconds * (1 ± CACHE_TTL_JITTER), so entries filled together expire apart."""
        jitter = self.settings.cache_ttl_jitter
        return seconds * random.uniform(1 - jitter, 1 + jitter)

    def read(self, *, user_id: uuid.UUID, task_id: uuid.UUID, load: Callable[[], Entry]) -> tuple[Entry, str]:
        """The task (None: not found) and which level answered; `load` reads the database."""
        key = task_key(user_id, task_id)
        task = self.local.get(key)
        if task is not ABSENT:
            return task, LOCAL
        (task, source), led = self.flights.run(key, lambda: self._shared_levels(key, user_id, load))
        return task, source if led else LOCAL  # a follower was answered from this process's memory

    def _shared_levels(self, key: str, user_id: uuid.UUID, load: Callable[[], Entry]) -> tuple[Entry, str]:
        session = self.redis.session()
        lock_ms = self.settings.cache_lock_ttl_ms
        give_up = time.monotonic() + lock_ms / 1000 + 0.5  # by then the lock has expired, whoever held it
        token = None
        while True:
            found = session.get(key)
            if found is None and session.up:
                token = session.try_lock(key, ttl_ms=lock_ms)
                if token:  # the last holder may have filled the key and let go between our get and our lock
                    found = session.get(key)
            if found is not None:
                if token:
                    session.unlock(key, token)
                task = decode(found, user_id=user_id)
                self._fill_local(key, task)
                return task, REDIS
            if token or not session.up or time.monotonic() >= give_up:
                break  # we load; without the lock only if Redis failed or the holder outlived its lock
            time.sleep(LOCK_POLL_SECONDS)
        try:
            task = load()
            ttl = self.settings.cache_ttl_seconds if task is not None else self.settings.cache_negative_ttl_seconds
            session.set(key, encode(task), ttl_ms=round(self.jittered(ttl) * 1000))
            self._fill_local(key, task)
        finally:
            if token:
                session.unlock(key, token)
        return task, MISS

    def _fill_local(self, key: str, task: Entry) -> None:
        ttl = self.settings.cache_local_ttl_seconds
        if task is None:
            ttl = min(ttl, self.settings.cache_negative_ttl_seconds)
        self.local.put(key, task, ttl_seconds=self.jittered(ttl))

    def invalidate(self, *, user_id: uuid.UUID, task_id: uuid.UUID) -> None:
        """After a committed write: evict the entry everywhere now, and again after CACHE_DELAYED_DELETE_MS.

        The second delete removes what a read that loaded the old row before the commit wrote back after
        the first delete; it runs on another thread, so the response does not wait for it.
        """
        key = task_key(user_id, task_id)
        self._evict_everywhere(key)  # if Redis refused, the delayed delete keeps retrying until it takes
        self.delayed.schedule(key, delay_seconds=self.settings.cache_delayed_delete_ms / 1000)

    def _evict_everywhere(self, key: str) -> bool:
        """Evict locally, delete in Redis, tell the other processes; whether Redis took the delete."""
        self.local.evict(key)
        session = self.redis.session()
        deleted = session.delete(key)
        session.publish(INVALIDATION_CHANNEL, key)
        return deleted and session.up
