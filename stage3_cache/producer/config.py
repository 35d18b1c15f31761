"""Typed settings: environment first, then `.env`, then defaults; checked once, at start-up."""
from __future__ import annotations

import os
import sys
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from common.connections import mask_url
from common.security import DEFAULT_PASSWORD_HASH_PROFILE, PasswordHashProfile

# Good enough for a laptop; refused in prod.
DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me-0123456789abcdef"
MIN_PROD_SECRET_LENGTH = 32


class Settings(BaseSettings):
    """Every setting the producer reads. Each field is read from the variable of its name in capitals."""

    # No env_file here: load_settings() names the dotenv file (ENV_FILE, default `.env`) on each call.
    model_config = SettingsConfigDict(env_file_encoding="utf-8", extra="ignore")

    app_env: Literal["dev", "test", "prod"] = "dev"
    database_url: str = Field(min_length=1)
    jwt_secret: SecretStr = Field(SecretStr(DEV_JWT_SECRET), min_length=16)
    access_token_ttl_seconds: int = Field(900, ge=60, le=86_400)
    # Argon2id's cost, a profile of common/security.py: strong by default; a test suite may ask for "cheapest".
    password_hash_profile: PasswordHashProfile = DEFAULT_PASSWORD_HASH_PROFILE
    debug: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] | None = None
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
    cache_delayed_delete_ms: int = Field(500, ge=0, le=10_000)

    @field_validator("database_url")
    @classmethod
    def _is_a_database_url(cls, value: str) -> str:
        try:
            make_url(value)
        except Exception:  # noqa: BLE001 - make_url raises several types for junk
            raise ValueError("not a SQLAlchemy database URL (e.g. mysql+pymysql://user:pw@host:3306/db)") from None
        return value

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

    @property
    def effective_log_format(self) -> str:
        """Readable in dev, one JSON object per line everywhere else, unless LOG_FORMAT says otherwise."""
        return self.log_format or ("console" if self.app_env == "dev" else "json")

    def safe_dump(self) -> dict[str, Any]:
        """The effective settings with every secret masked, for the start-up log line."""
        values = self.model_dump(mode="json")
        values["jwt_secret"] = "***"
        values["database_url"] = make_url(self.database_url).render_as_string(hide_password=True)
        values["log_format"] = self.effective_log_format
        values["redis_url"] = mask_url(self.redis_url)
        return values


class SettingsError(Exception):
    """One or more settings are missing, malformed or unsafe; each problem names its variable."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems))
        self.problems = problems


def load_settings(**overrides: Any) -> Settings:
    """Read and check the settings; raise SettingsError naming every bad variable."""
    # ENV_FILE names another dotenv file, or none when empty (the test harness sets it empty).
    env_file = os.environ.get("ENV_FILE", ".env") or None
    try:
        settings = Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsError([(".".join(map(str, e["loc"])).upper() or "SETTINGS", _describe(e))
                             for e in exc.errors(include_url=False)]) from None
    if settings.app_env == "prod":
        problems = production_problems(settings)
        if problems:
            raise SettingsError(problems)
    return settings


def production_problems(settings: Settings) -> list[tuple[str, str]]:
    """What makes these settings unsafe to run in production."""
    problems = []
    secret = settings.jwt_secret.get_secret_value()
    if secret == DEV_JWT_SECRET:
        problems.append(("JWT_SECRET", "is the development default; set a random secret in prod"))
    elif len(secret) < MIN_PROD_SECRET_LENGTH:
        problems.append(("JWT_SECRET", f"is shorter than {MIN_PROD_SECRET_LENGTH} characters; too weak for prod"))
    if make_url(settings.database_url).get_backend_name() == "sqlite":
        problems.append(("DATABASE_URL", "is SQLite, which prod refuses; point it at MySQL/MariaDB"))
    if settings.debug:
        problems.append(("DEBUG", "is on; prod refuses debug mode"))
    if settings.password_hash_profile != DEFAULT_PASSWORD_HASH_PROFILE:
        problems.append(("PASSWORD_HASH_PROFILE", f"is below {DEFAULT_PASSWORD_HASH_PROFILE}, a cost for test "
                                                  "suites; prod refuses it"))
    return problems


def settings_or_exit() -> Settings:
    """For process start-up: the settings, or one line per problem on stderr and exit code 2."""
    try:
        return load_settings()
    except SettingsError as exc:
        for name, problem in exc.problems:
            print(f"configuration error: {name} {problem}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def _describe(error: dict[str, Any]) -> str:
    if error["type"] == "missing":
        return "is required but not set"
    if error["type"] in ("too_short", "string_too_short"):
        return f"is too short: at least {error['ctx']['min_length']} characters"
    return f"is invalid: {error['msg']}"
