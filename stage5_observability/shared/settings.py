"""The settings both processes read, and how settings are loaded: environment first, then `.env`, then defaults.

Each process subclasses SharedSettings with the fields it uses, so a process asks only for what it
needs (the consumer has no REDIS_URL). load() checks a model once, at start-up, and names every
bad variable; or_exit() turns that into one line per problem and exit code 2.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

Model = TypeVar("Model", bound="SharedSettings")
DEFAULT_TRACE_FILE = Path("var") / "traces" / "spans.jsonl"
# Outside dev, a new trace is kept with this probability (design/tracing.md says what each rate costs).
DEFAULT_TRACE_SAMPLE_RATE = 0.01


class SharedSettings(BaseSettings):
    """Where the database and the broker are, the topics, and how to log. Each field is its name in capitals."""

    # No env_file here: load() names the dotenv file (ENV_FILE, default `.env`) on each call.
    model_config = SettingsConfigDict(env_file_encoding="utf-8", extra="ignore")

    app_env: Literal["dev", "test", "prod"] = "dev"
    database_url: str = Field(min_length=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] | None = None
    # The broker (stage 4): where Kafka is, the topics, and how long a write may wait for an acknowledgement.
    kafka_bootstrap_servers: str = Field(min_length=1)
    task_topic: str = Field("tasks.v1", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    dlq_topic: str = Field("tasks.v1.dlq", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    publish_timeout_ms: int = Field(5_000, ge=100, le=60_000)
    # Traces (stage 5): the share of new traces kept (default: all in dev, DEFAULT_TRACE_SAMPLE_RATE
    # elsewhere), and where spans go: OTLP/HTTP if an endpoint is set, else JSON lines in TRACE_FILE.
    trace_sample_rate: float | None = Field(None, ge=0.0, le=1.0)
    trace_file: Path = DEFAULT_TRACE_FILE
    otel_exporter_otlp_endpoint: str | None = Field(None, pattern=r"^https?://\S+$")

    @field_validator("database_url")
    @classmethod
    def _is_a_database_url(cls, value: str) -> str:
        try:
            make_url(value)
        except Exception:  # noqa: BLE001 - make_url raises several types for junk
            raise ValueError("not a SQLAlchemy database URL (e.g. mysql+pymysql://user:pw@host:3306/db)") from None
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _is_a_broker_list(cls, value: str) -> str:
        address = re.compile(r"([a-z]+://)?[A-Za-z0-9._:\[\]-]+:\d{1,5}")
        if not all(address.fullmatch(part.strip()) for part in value.split(",")):
            raise ValueError("not a list of host:port (e.g. 127.0.0.1:9092,10.0.0.2:9092)")
        return value

    @property
    def effective_log_format(self) -> str:
        """Readable in dev, one JSON object per line everywhere else, unless LOG_FORMAT says otherwise."""
        return self.log_format or ("console" if self.app_env == "dev" else "json")

    @field_validator("trace_file")
    @classmethod
    def _is_a_file_path(cls, value: Path) -> Path:
        if not value.name or value.is_dir():
            raise ValueError("is not a file path (e.g. var/traces/spans.jsonl)")
        return value

    @property
    def effective_trace_sample_rate(self) -> float:
        """Every trace in dev, where one request at a time is looked at; a sample elsewhere."""
        if self.trace_sample_rate is not None:
            return self.trace_sample_rate
        return 1.0 if self.app_env == "dev" else DEFAULT_TRACE_SAMPLE_RATE

    def safe_dump(self) -> dict[str, Any]:
        """The effective settings with every secret masked, for the start-up log line."""
        values = self.model_dump(mode="json")
        values["trace_sample_rate"] = self.effective_trace_sample_rate
        values["database_url"] = make_url(self.database_url).render_as_string(hide_password=True)
        values["log_format"] = self.effective_log_format
        return values

    def production_problems(self) -> list[tuple[str, str]]:
        """What makes these settings unsafe to run in production; a subclass adds its own."""
        if make_url(self.database_url).get_backend_name() == "sqlite":
            return [("DATABASE_URL", "is SQLite, which prod refuses; point it at MySQL/MariaDB")]
        return []


class SettingsError(Exception):
    """One or more settings are missing, malformed or unsafe; each problem names its variable."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems))
        self.problems = problems


def load(model: type[Model], **overrides: Any) -> Model:
    """Read and check the settings of `model`; raise SettingsError naming every bad variable."""
    # ENV_FILE names another dotenv file, or none when empty (the test harness sets it empty).
    env_file = os.environ.get("ENV_FILE", ".env") or None
    try:
        settings = model(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsError([(".".join(map(str, e["loc"])).upper() or "SETTINGS", _describe(e))
                             for e in exc.errors(include_url=False)]) from None
    if settings.app_env == "prod" and (problems := settings.production_problems()):
        raise SettingsError(problems)
    return settings


def or_exit(model: type[Model]) -> Model:
    """For process start-up: the settings, or one line per problem on stderr and exit code 2."""
    try:
        return load(model)
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
