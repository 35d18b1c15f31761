"""Background work of the cache, one thread each per process: the invalidation subscriber and the retried writes."""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

import redis
from loguru import logger

from common.backends import first_line


class Subscriber:
    """Hands every key published on `channel` to `evict`; after any gap in listening, `clear`s instead.

    Messages published while this process was not subscribed (Redis down, a reconnect) are lost
    for good, so the local level cannot know what it missed: it starts empty again.
    """

    def __init__(self, client: redis.Redis, *, channel: str, evict: Callable[[str], None],
                 clear: Callable[[], None]) -> None:
        self.client, self.channel, self.evict, self.clear = client, channel, evict, clear
        threading.Thread(target=self._listen, name="cache-invalidations", daemon=True).start()

    def _listen(self) -> None:
        lost = False
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                self.clear()
                if lost:
                    logger.info("cache invalidations resubscribed; local cache cleared")
                lost = False
                while True:
                    if message := pubsub.get_message(timeout=1.0):
                        self.evict(message["data"])
            except (redis.RedisError, OSError) as exc:
                if not lost:
                    logger.warning("cache invalidations lost", error=first_line(exc))
                lost = True
            finally:
                pubsub.close()
            time.sleep(0.5)  # then try again, for as long as the process lives


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
        threading.Thread(target=self._run, name="cache-retried-writes", daemon=True).start()

    def schedule(self, write: Callable[[], bool], *, give_up_at: float,
                 gave_up: Callable[[], None] = lambda: None) -> None:
        with self._wakeup:
            heapq.heappush(self._due, (time.monotonic() + self.retry_seconds, give_up_at, next(self._order), write,
                                       gave_up))
            self._wakeup.notify()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._wakeup.wait(self._due[0][0] - time.monotonic() if self._due else None)
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
