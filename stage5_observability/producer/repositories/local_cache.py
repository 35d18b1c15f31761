"""The in-process cache level: an LRU with a TTL per entry, and single flight per key among this process's threads."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from cachetools import TLRUCache

T = TypeVar("T")
ABSENT = object()  # "not cached"; a cached None is a negative entry


class LocalCache:
    """Thread-safe, bounded by entries (least recently used evicted first), each entry with its own expiry.

    TLRUCache rather than TTLCache: one TTL for all entries would defeat the jitter.
    A pinned entry (stage 4) answers before the LRU and outlives evict, clear and any TTL until it
    is unpinned: it is a state this process accepted that Redis has not taken yet, and Redis may
    still hold the older one.
    """

    def __init__(self, *, max_entries: int) -> None:
        self._entries: TLRUCache = TLRUCache(maxsize=max_entries, ttu=lambda _key, value, now: now + value[1],
                                             timer=time.monotonic)
        self._pinned: dict[str, Any] = {}
        self._lock = threading.Lock()  # cachetools caches are not thread-safe; gthread workers are threads

    def get(self, key: str) -> Any:
        with self._lock:
            if key in self._pinned:
                return self._pinned[key]
            entry = self._entries.get(key)
        return ABSENT if entry is None else entry[0]

    def pin(self, key: str, value: Any) -> None:
        """Answer `value` for `key` until unpin(key, value); a later pin replaces it."""
        with self._lock:
            self._pinned[key] = value

    def unpin(self, key: str, value: Any) -> None:
        """Drop the pin if it still holds `value` (a newer pin stays)."""
        with self._lock:
            if self._pinned.get(key) is value:
                del self._pinned[key]

    def put(self, key: str, value: Any, *, ttl_seconds: float) -> None:
        with self._lock:
            self._entries[key] = (value, ttl_seconds)

    def evict(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.ok = False


class SingleFlight:
    """Of the threads that ask for one key at once, one (the leader) runs the load; the others wait for its result."""

    def __init__(self, *, wait_seconds: float) -> None:
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        self.wait_seconds = wait_seconds

    def run(self, key: str, load: Callable[[], T]) -> tuple[T, bool]:
        """Return (the load's result, whether this thread led); a follower whose leader failed loads itself."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        if not leader:
            if flight.done.wait(self.wait_seconds) and flight.ok:
                return flight.result, False
            return load(), True  # the leader failed or is stuck: its error is its own request's answer
        try:
            flight.result, flight.ok = load(), True
            return flight.result, True
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
