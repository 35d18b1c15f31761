"""The consumer's settings: the shared ones (the database, the broker, the topics, logging) and its own batch rules."""
from __future__ import annotations

from pydantic import Field

from ..shared import settings as shared
from ..shared.settings import SharedSettings


class ConsumerSettings(SharedSettings):
    """Only what `python -m <stage>.consumer` uses: no Redis, no JWT secret."""

    consumer_group: str = Field("task-persister", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    consumer_batch_max: int = Field(500, ge=1, le=10_000)
    consumer_batch_wait_ms: int = Field(100, ge=1, le=10_000)
    consumer_max_attempts: int = Field(5, ge=1, le=100)
    # Where the consumer serves GET /metrics (stage 5): Prometheus scrapes it beside the producer's workers.
    consumer_metrics_host: str = Field("127.0.0.1", min_length=1)
    consumer_metrics_port: int = Field(9102, ge=1, le=65_535)


def settings_or_exit() -> ConsumerSettings:
    """For process start-up: the settings, or one line per problem on stderr and exit code 2."""
    return shared.or_exit(ConsumerSettings)
