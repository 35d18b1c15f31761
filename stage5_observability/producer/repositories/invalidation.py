"""Background work of the cache, one thread each per app: the invalidation subscriber and the retried writes.

Each starts its thread when built and ends it in `stop()`, which the app's runtime calls as it closes.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

import redis
from loguru import logger

from common.connections import first_line

# How long the subscriber blocks for a message before it looks whether it should stop.
LISTEN_POLL_SECONDS = 0.25


class Subscriber:
    """Hands every key published on `channel` to `evict`; after any gap in listening, `clear`s instead.

    Messages published while this process was not subscribed (Redis down, a reconnect) are lost
    for good, so the local level cannot know what it missed: it starts empty again.
    """

    def __init__(self, client: redis.Redis, *, channel: str, evict: Callable[[str], None],
                 clear: Callable[[], None]) -> None:
        self.client, self.channel, self.evict, self.clear = client, channel, evict, clear
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="cache-invalidations", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the listening thread (within one LISTEN_POLL_SECONDS) and wait for it."""
        self._stopping.set()
        self._thread.join()

    def _listen(self) -> None:
        lost = False
        while not self._stopping.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                self.clear()
                if lost:
                    logger.info("cache invalidations resubscribed; local cache cleared")
                lost = False
                while not self._stopping.is_set():
                    if message := pubsub.get_message(timeout=LISTEN_POLL_SECONDS):
                        self.evict(message["data"])
            except (redis.RedisError, OSError) as exc:
                if not lost:
                    logger.warning("cache invalidations lost", error=first_line(exc))
                lost = True
            finally:
                pubsub.close()
            self._stopping.wait(0.5)  # then try again, until the app closes


class RetriedWrites:
    """Runs cache writes that Redis refused again, off the request thread, until they take or give up.

    A write answers whether Redis took it. Each is given up at its own deadline: by then the entry
    it would have replaced has expired by itself; `gave_up` is then called, if given.
    """

    def __init__(self, *, retry_seconds: float) -> None:
        self.retry_seconds = retry_seconds
        self._due: list[tuple[float, float, int, Callable[[], bool], Callable[[], None]]] = []
        # each: (when, give up at, order, write, gave_up)
        self._order = itertools.count()  # breaks ties, so the heap never compares two writes
        self._wakeup = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="cache-retried-writes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread and wait for it; writes still due are dropped (the pinned entries die with the app)."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        self._thread.join()

    def schedule(self, write: Callable[[], bool], *, give_up_at: float,
                 gave_up: Callable[[], None] = lambda: None) -> None:
        with self._wakeup:
            heapq.heappush(self._due, (time.monotonic() + self.retry_seconds, give_up_at, next(self._order), write,
                                       gave_up))
            self._wakeup.notify()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._stopping and (not self._due or self._due[0][0] > time.monotonic()):
                    self._wakeup.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._stopping:
                    return
                _, give_up_at, _, write, gave_up = heapq.heappop(self._due)
            try:
                done = write()
            except Exception:  # noqa: BLE001 - this thread must outlive any one failure
                logger.exception("retried cache write failed")
                done = False
            if done:
                continue
            if time.monotonic() < give_up_at:
                self.schedule(write, give_up_at=give_up_at, gave_up=gave_up)
            else:
                gave_up()
