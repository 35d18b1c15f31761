"""Cache-aside for task reads: the local LRU, then Redis, then the database; and the cache write after an event.

Read: local hit -> done. Else one thread per key in this process (single flight) asks Redis; on a
miss it takes the key's Redis lock (one loader across processes and instances), loads from the
database, and fills Redis and the local level; a process that finds the lock taken polls Redis for
the value until the lock's expiry, then takes over. A miss is cached too, as a short negative entry.
Write (stage 4): the broker acknowledged an event the database has not landed yet, so the entry is
*written*, not deleted (read-your-writes): Redis for READ_YOUR_WRITES_TTL_SECONDS, this process's
level, and an invalidation so other processes drop an older local copy. Nobody deletes it early: a
delete would expose the database row while a later event is still on its way to it.
"""
from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable

from common.models import Task

from ..config import Settings
from ..metrics import ProducerMetrics
from ..repositories.cache import INVALIDATION_CHANNEL, CacheSession, RedisCache, cancel_key, decode, task_key
from ..repositories.invalidation import RetriedWrites, Subscriber
from ..repositories.local_cache import ABSENT, LocalCache, SingleFlight

# What answered a read (the X-Cache header): this process's memory, Redis, or the database.
LOCAL, REDIS, MISS = "local", "redis", "miss"
LOCK_POLL_SECONDS = 0.02
Entry = Task | None  # what a level holds for a key; None is "no such task for this user"


class TaskCache:
    """The two cache levels of task reads, and their threads: one per app, built by its runtime, closed with it."""

    def __init__(self, *, redis: RedisCache, settings: Settings, metrics: ProducerMetrics) -> None:
        self.redis, self.settings, self.metrics = redis, settings, metrics
        self.local = LocalCache(max_entries=settings.cache_local_max_entries)
        self.flights = SingleFlight(wait_seconds=settings.cache_lock_ttl_ms / 1000 + 15)
        self.retries = RetriedWrites(retry_seconds=0.5)
        self.subscriber = Subscriber(redis.client, channel=INVALIDATION_CHANNEL, evict=self.local.evict,
                                     clear=self.local.clear)

    def close(self) -> None:
        """Stop the subscriber and the retried writes, and wait for their threads."""
        self.subscriber.stop()
        self.retries.stop()

    def session(self) -> CacheSession:
        """One request's Redis session: every call of the request goes through it, so after its first
        failure (down, or a timeout) the rest of the request skips Redis: a hung Redis costs one timeout."""
        return self.redis.session()

    def jittered(self, seconds: float) -> float:
        """A TTL spread uniformly over seconds * (1 ± CACHE_TTL_JITTER), so entries filled together expire apart."""
        jitter = self.settings.cache_ttl_jitter
        return seconds * random.uniform(1 - jitter, 1 + jitter)

    def read(self, *, session: CacheSession, user_id: uuid.UUID, task_id: uuid.UUID,
             load: Callable[[], Entry]) -> tuple[Entry, str]:
        """The task (None: not found) and which level answered; `load` reads the database."""
        key = task_key(user_id, task_id)
        task = self.local.get(key)
        self._count(LOCAL, task)
        if task is not ABSENT:
            return task, LOCAL
        (task, source), led = self.flights.run(key, lambda: self._shared_levels(session, key, user_id, load))
        if not led:
            self.metrics.singleflight_waits.inc()
        return task, source if led else LOCAL  # a follower was answered from this process's memory

    def _count(self, level: str, found: object) -> None:
        result = "miss" if found is ABSENT else "negative_hit" if found is None else "hit"
        self.metrics.cache_lookup[level, result].inc()

    def _shared_levels(self, session: CacheSession, key: str, user_id: uuid.UUID,
                       load: Callable[[], Entry]) -> tuple[Entry, str]:
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
                self._count(REDIS, task)
                self._fill_local(key, task)
                return task, REDIS
            if token or not session.up or time.monotonic() >= give_up:
                break  # we load; without the lock only if Redis failed or the holder outlived its lock
            time.sleep(LOCK_POLL_SECONDS)
        self._count(REDIS, ABSENT)
        try:
            task = load()
            ttl = self.settings.cache_ttl_seconds if task is not None else self.settings.cache_negative_ttl_seconds
            if session.set_if_newer(key, task, ttl_ms=round(self.jittered(ttl) * 1000)) is False:
                # A create or cancel wrote a newer state while we read the database, which has not landed it yet.
                found = session.get(key)
                task = decode(found, user_id=user_id) if found is not None else task
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

    def remember(self, *, session: CacheSession, task: Task) -> bool:
        """After the broker's ack: the task's new state answers reads at once, from any process, if Redis took it."""
        key = task_key(task.user_id, task.id)
        ttl_seconds = self.jittered(self.settings.read_your_writes_ttl_seconds)
        self._fill_local(key, task)
        # Until Redis holds it, this process answers the new state from memory: after an outage Redis
        # may still hold the older one, and the resubscribed invalidations clear the LRU.
        self.local.pin(key, task)

        def write(session: CacheSession) -> bool:
            # Once stored, other processes are told to drop their copy and read Redis again (our own
            # subscriber may drop ours too: harmless).
            stored = session.set_if_newer(key, task, ttl_ms=round(ttl_seconds * 1000),
                                          announce_on=INVALIDATION_CHANNEL)
            if stored is not None:  # Redis holds this state, or a newer one (then read that from Redis)
                self.local.unpin(key, task)
                if stored is False:
                    self.local.evict(key)
            return session.up

        if write(session):
            return True
        # Write it once Redis is back (an older state never replaces a newer one, so a late retry is
        # harmless), for as long as the entry would live.
        self.retries.schedule(lambda: write(self.redis.session()), give_up_at=time.monotonic() + ttl_seconds,
                              gave_up=lambda: self.local.unpin(key, task))
        return False

    def claim_cancel(self, *, session: CacheSession, user_id: uuid.UUID, task_id: uuid.UUID) -> tuple[bool, str | None]:
        """(whether this request may publish the cancel, the claim's token to release on failure).

        SET NX makes one of racing cancels the winner. Without Redis there is no claim: the request
        proceeds (two racing cancels may then both answer 202; the consumer's conditional UPDATE applies one).
        """
        token = uuid.uuid4().hex
        ttl_seconds = self.settings.read_your_writes_ttl_seconds
        taken = session.claim(cancel_key(user_id, task_id), token, ttl_seconds=ttl_seconds)
        return (taken is not False), (token if taken else None)

    def release_cancel(self, *, session: CacheSession, user_id: uuid.UUID, task_id: uuid.UUID,
                       token: str | None) -> None:
        """The cancel was not published (503): let a retry claim it again."""
        if token:
            session.release(cancel_key(user_id, task_id), token)
