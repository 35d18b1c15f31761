"""Readiness: ask each dependency whether it answers."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..repositories.broker import Broker
from ..repositories.cache import RedisCache
from ..repositories.db import Database


@dataclass
class Readiness:
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        # "degraded" (the cache) is not "down": the service still answers, from the database.
        return all(check["status"] != "down" for check in self.checks.values())


def readiness(*, database: Database, cache: RedisCache, broker: Broker) -> Readiness:
    """Probe each dependency once and time it."""
    report = Readiness()
    report.checks["database"] = _timed(database.ping)
    report.checks["cache"] = _timed(cache.ping, failed="degraded")  # optional: reads fall back to the database
    report.checks["broker"] = _timed(broker.ping)  # required: without it no create can be accepted
    return report


def _timed(probe, *, failed: str = "down") -> dict[str, Any]:
    started = time.perf_counter()
    try:
        probe()
    except Exception:  # noqa: BLE001 - any failure means "not ready"; the body says only that
        return {"status": failed, "error": "unreachable"}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
