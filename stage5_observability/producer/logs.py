"""The producer's logging: the shared set-up (shared/logs.py) told where Flask keeps the request id, gunicorn's
own messages through the same sink, and one access line per request."""
from __future__ import annotations

import random
import time

from flask import Flask, Response, g, has_request_context, request
from gunicorn.glogging import Logger as _GunicornLogger
from loguru import logger

from ..shared import logs
from ..shared.logs import InterceptHandler
from .config import Settings


def configure(settings: Settings) -> None:
    """Install the one sink for this process (gunicorn's master calls this; workers inherit it)."""
    logs.configure(settings, name="producer", request_id=_request_id)


def _request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


class GunicornLogger(_GunicornLogger):
    """gunicorn's own messages (start, workers, timeouts) through the same sink as everything else."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log.handlers = [InterceptHandler()]
            log.propagate = False


def init_app(app: Flask, settings: Settings) -> None:
    """One access line per request: errors and slow requests always, successes sampled."""
    sample_rate, slow_ms = settings.log_sample_rate, settings.log_slow_request_ms

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        latency_ms = round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2)
        status = response.status_code
        if status < 400 and latency_ms < slow_ms and random.random() >= sample_rate:
            return response
        level = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
        user_id = g.get("user_id")
        logger.bind(logger="access", method=request.method, path=request.path, status=status,
                    latency_ms=latency_ms, user_id=str(user_id) if user_id else None,
                    remote_addr=request.remote_addr).log(level, "request")
        return response
