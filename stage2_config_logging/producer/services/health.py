"""Readiness: ask each dependency whether it answers."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..repositories.db import Database


@dataclass
class Readiness:
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(check["status"] == "up" for check in self.checks.values())


def readiness(*, database: Database) -> Readiness:
    """Probe each dependency once and time it."""
    report = Readiness()
    report.checks["database"] = _timed(database.ping)
    return report


def _timed(probe) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        probe()
    except Exception:  # noqa: BLE001 - any failure means "not ready"; the body says only that
        return {"status": "down", "error": "unreachable"}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
