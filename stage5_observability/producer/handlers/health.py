"""Liveness and readiness probes."""
from __future__ import annotations

from flask import Blueprint

from .. import runtime
from ..services import health

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: the process serves requests. Checks nothing external on purpose."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Readiness: every dependency answers; 503 names the ones that do not."""
    deps = runtime.current()
    report = health.readiness(database=deps.database, cache=deps.cache, broker=deps.broker)
    for dependency, check in report.checks.items():  # an orchestrator asks every few seconds: the gauge keeps up
        deps.metrics.readiness.labels(dependency).set(1 if check["status"] == "up" else 0)
    return {"status": "ready" if report.ready else "unavailable", "checks": report.checks}, (
        200 if report.ready else 503)
