"""The producer's typed settings: the shared ones (shared/settings.py), then its own; checked once, at start-up."""
from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from common.connections import mask_url
from common.security import DEFAULT_PASSWORD_HASH_PROFILE, PasswordHashProfile

from ..shared import settings as shared
from ..shared.settings import SettingsError, SharedSettings

__all__ = ["Settings", "SettingsError", "load_settings", "settings_or_exit"]

# Good enough for a laptop; refused in prod.
DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me-0123456789abcdef"
MIN_PROD_SECRET_LENGTH = 32


class Settings(SharedSettings):
    """Every setting the producer reads, past the shared ones. Each field is its name in capitals."""

    jwt_secret: SecretStr = Field(SecretStr(DEV_JWT_SECRET), min_length=16)
    access_token_ttl_seconds: int = Field(900, ge=60, le=86_400)
    # Argon2id's cost, a profile of common/security.py: strong by default; a test suite may ask for "cheapest".
    password_hash_profile: PasswordHashProfile = DEFAULT_PASSWORD_HASH_PROFILE
    debug: bool = False
    log_sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    log_slow_request_ms: int = Field(500, ge=0)
    # The cache (stage 3): where Redis is, how long each level keeps an entry, and how long anything may wait on it.
    redis_url: str = Field(min_length=1)
    redis_timeout_ms: int = Field(200, ge=10, le=5_000)
    cache_ttl_seconds: int = Field(60, ge=1, le=86_400)
    cache_local_ttl_seconds: float = Field(2.0, gt=0, le=60)
    cache_local_max_entries: int = Field(10_000, ge=1, le=1_000_000)
    cache_negative_ttl_seconds: float = Field(5.0, gt=0, le=300)
    cache_ttl_jitter: float = Field(0.1, ge=0.0, le=0.5)
    cache_lock_ttl_ms: int = Field(3_000, ge=100, le=60_000)
    # The broker (stage 4; where it is and the topics are shared settings): how a create publishes.
    publish_attempts: int = Field(2, ge=1, le=5)
    producer_linger_ms: int = Field(5, ge=0, le=1_000)
    # Idempotency-Key records (done: 24 h) and claims (in flight: must outlive every publish attempt).
    idempotency_ttl_seconds: int = Field(86_400, ge=60, le=7 * 86_400)
    idempotency_in_flight_seconds: int = Field(30, ge=1, le=3_600)
    # How long the producer's own copy of an accepted task answers reads while the consumer lands it.
    read_your_writes_ttl_seconds: int = Field(600, ge=10, le=86_400)

    @field_validator("redis_url")
    @classmethod
    def _is_a_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("not a Redis URL (e.g. redis://127.0.0.1:6379/0)")
        return value

    @field_validator("cache_local_ttl_seconds")
    @classmethod
    def _local_entries_live_shorter_than_redis_ones(cls, value: float, info: ValidationInfo) -> float:
        # The local TTL bounds how long another process may serve a stale entry; it must stay short.
        redis_ttl = info.data.get("cache_ttl_seconds")
        if redis_ttl is not None and value >= redis_ttl:
            raise ValueError(f"must be shorter than CACHE_TTL_SECONDS ({redis_ttl})")
        return value

    @field_validator("idempotency_in_flight_seconds")
    @classmethod
    def _claims_outlive_the_publish(cls, value: int, info: ValidationInfo) -> int:
        # A claim that expired while its request still waits for the broker would let a retry publish twice.
        timeout_ms, attempts = info.data.get("publish_timeout_ms"), info.data.get("publish_attempts")
        if timeout_ms is not None and attempts is not None and value * 1000 <= attempts * timeout_ms:
            raise ValueError(f"must exceed PUBLISH_ATTEMPTS x PUBLISH_TIMEOUT_MS ({attempts * timeout_ms / 1000:g} s)")
        return value

    def safe_dump(self) -> dict[str, Any]:
        """The effective settings with every secret masked, for the start-up log line."""
        values = super().safe_dump()
        values["jwt_secret"] = "***"
        values["redis_url"] = mask_url(self.redis_url)
        return values

    def production_problems(self) -> list[tuple[str, str]]:
        """What makes these settings unsafe to run in production."""
        problems = super().production_problems()
        secret = self.jwt_secret.get_secret_value()
        if secret == DEV_JWT_SECRET:
            problems.append(("JWT_SECRET", "is the development default; set a random secret in prod"))
        elif len(secret) < MIN_PROD_SECRET_LENGTH:
            problems.append(("JWT_SECRET", f"is shorter than {MIN_PROD_SECRET_LENGTH} characters; too weak for prod"))
        if self.debug:
            problems.append(("DEBUG", "is on; prod refuses debug mode"))
        if self.password_hash_profile != DEFAULT_PASSWORD_HASH_PROFILE:
            problems.append(("PASSWORD_HASH_PROFILE", f"is below {DEFAULT_PASSWORD_HASH_PROFILE}, a cost for test "
                                                      "suites; prod refuses it"))
        return problems


def load_settings(**overrides: Any) -> Settings:
    """Read and check the settings; raise SettingsError naming every bad variable."""
    return shared.load(Settings, **overrides)


def settings_or_exit() -> Settings:
    """For process start-up: the settings, or one line per problem on stderr and exit code 2."""
    return shared.or_exit(Settings)
