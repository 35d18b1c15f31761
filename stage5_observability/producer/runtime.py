"""The composition root: what this process's requests use, built once with the app and closed with it.

create_app() starts one Runtime and keeps it in `app.extensions["runtime"]`; handlers hand its parts
to the services, which take what they use as keyword arguments. Nothing here is a module global, so
two apps in one process (a test, say) each have their own database, cache, broker and settings.
"""
from __future__ import annotations

from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from prometheus_client import CollectorRegistry

from common.security import Passwords

from ..shared.tracing import Tracing
from .config import Settings
from .instrumentation import instrument_clients
from .metrics import ProducerMetrics, ResourceSampler
from .repositories.broker import Broker
from .repositories.cache import RedisCache
from .repositories.db import Database
from .services.auth import TokenPolicy
from .services.idempotency import Idempotency
from .services.task_cache import TaskCache


@dataclass(frozen=True)
class Runtime:
    """This app's dependencies: each is built here, and only here; close() closes what start() opened."""

    database: Database
    passwords: Passwords
    tokens: TokenPolicy
    cache: RedisCache
    task_cache: TaskCache  # the local level and Redis in front of the database, with their threads
    broker: Broker  # the task topic's producer, with its delivery-report thread
    idempotency: Idempotency
    metrics: ProducerMetrics  # every series this app exports (GET /metrics)
    tracing: Tracing  # this worker's tracer provider, with its export thread
    _opened: ExitStack = field(repr=False)  # what close() closes, last opened first

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        """Open the dependencies (in each gunicorn worker, after the fork: pools and threads do not survive one).

        If one of them fails to open, those opened before it are closed again before the error propagates.
        """
        with ExitStack() as opened:
            metrics = ProducerMetrics(CollectorRegistry())
            # Closed last: the spans of everything closed before it are still written.
            tracing = opened.enter_context(closing(Tracing(settings, service="producer")))
            database = opened.enter_context(closing(Database(url=settings.database_url,
                                                             pool_timeouts=metrics.pool_timeouts)))
            opened.enter_context(closing(ResourceSampler(metrics, engines=database.engines)))
            cache = opened.enter_context(closing(RedisCache(url=settings.redis_url, timeout_ms=settings.redis_timeout_ms,
                                                            errors=metrics.redis_errors)))
            instrument_clients(tracing=tracing, metrics=metrics, database=database, cache=cache)
            task_cache = opened.enter_context(closing(TaskCache(redis=cache, settings=settings, metrics=metrics)))
            # Closed first: its queue is flushed while the pools and the cache's threads still run.
            broker = opened.enter_context(closing(Broker(
                bootstrap=settings.kafka_bootstrap_servers, topic=settings.task_topic,
                linger_ms=settings.producer_linger_ms, timeout_ms=settings.publish_timeout_ms,
                attempts=settings.publish_attempts, metrics=metrics, tracer=tracing.tracer)))
            passwords = Passwords(settings.password_hash_profile)
            tokens = TokenPolicy(secret=settings.jwt_secret.get_secret_value(),
                                 ttl=timedelta(seconds=settings.access_token_ttl_seconds))
            idempotency = Idempotency(database=database, ttl_seconds=settings.idempotency_ttl_seconds,
                                      in_flight_seconds=settings.idempotency_in_flight_seconds)
            opened_ok = opened.pop_all()  # all opened: from now on close() closes them, not this block
        return cls(database=database, passwords=passwords, tokens=tokens, cache=cache, task_cache=task_cache,
                   broker=broker, idempotency=idempotency, metrics=metrics, tracing=tracing, _opened=opened_ok)

    def close(self) -> None:
        """Close every dependency start() opened, in reverse order; one that fails to close does not stop the rest."""
        self._opened.close()


def current() -> Runtime:
    """The runtime of the app serving this request."""
    return current_app.extensions["runtime"]
