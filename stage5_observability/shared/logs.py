"""Logging with loguru, for either process: readable in dev, one flat JSON object per line otherwise; stdlib
logging (gunicorn, werkzeug, SQLAlchemy, confluent-kafka) routed into the same sink; secrets redacted on the
way out; inside a span, every line carries its trace_id and span_id. No Flask here: the producer tells
configure() how to find the id of the request being served."""
from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Callable
from datetime import timezone
from typing import Any

from loguru import logger
from opentelemetry import trace

from .settings import SharedSettings

CONSOLE_FORMAT = ("<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> <cyan>{extra[logger]}</cyan> "
                  "{extra[request_label]} <level>{extra[message_line]}</level>{extra[fields]}")
_REDACTIONS = (
    # A whole Authorization value, whatever its scheme ("Basic dXNl...", "Bearer eyJ...").
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\"'\n,}]+"), r"\1***"),
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',]+"), r"\1***"),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), "***"),  # anything shaped like a JWT
    (re.compile(r"(://[^:/@\s]*:)[^@\s]+@"), r"\1***@"),  # the password in a DSN
    (re.compile(r"\$argon2[a-z]*\$[^\s\"']+"), "***"),  # a whole password hash, parameters and all
    (re.compile(r"(?i)([\"']?(?:password|passwd|secret|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"), r"\1***"),
)
# A value logged under one of these names is masked whole, whatever it looks like.
_SENSITIVE_KEY = re.compile(r"(?i)^(?:\w+_)?(?:password|passwd|secret|token|authorization|cookie)$")

# Extra keys the formats place themselves; every other bound key is a field of its own.
_FORMATTED = frozenset({"logger", "request_id", "request_label", "message_line", "fields"})


def redact(text: str) -> str:
    """Mask bearer tokens, JWTs, DSN passwords, password hashes and `password=...` pairs."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def configure(settings: SharedSettings, *, name: str,
              request_id: Callable[[], str | None] = lambda: None) -> None:
    """Install the one sink for this process; `name` is its records' logger, `request_id` finds the current one."""
    console = settings.effective_log_format == "console"

    def add_context(record: dict[str, Any]) -> None:
        """Patcher: attach the id of the request being served, and the ids of the current span, if any."""
        extra = record["extra"]
        if extra.get("request_id") is None:
            extra["request_id"] = request_id()
        span = trace.get_current_span().get_span_context()
        if span.is_valid:  # sampled or not: a log line finds its trace's other lines either way
            extra["trace_id"], extra["span_id"] = format(span.trace_id, "032x"), format(span.span_id, "016x")

    def add_console_text(record: dict[str, Any]) -> None:
        """Patcher for the console format: the request id, then the message and fields as one safe line."""
        add_context(record)
        extra = record["extra"]
        extra["request_label"] = _one_line(extra["request_id"] or "-")
        fields = {k: _mask_field(k, v) for k, v in extra.items() if k not in _FORMATTED}
        extra["fields"] = "".join(f" {k}={_one_line(v)}" for k, v in fields.items())
        extra["message_line"] = _one_line(record["message"])

    logger.remove()
    logger.configure(patcher=add_console_text if console else add_context,
                     extra={"logger": name, "request_id": None})
    # diagnose=False: never print variable values in tracebacks, they may hold secrets.
    logger.add(_console_sink if console else _json_sink, level=settings.log_level,
               format=CONSOLE_FORMAT if console else "{message}", colorize=console and sys.stderr.isatty(),
               backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[InterceptHandler()], level=logging.WARNING, force=True)
    # The Kafka clients' full log (shared/kafka_log.py writes repeats at DEBUG) when, and only when, asked for.
    logging.getLogger("kafka").setLevel(logging.DEBUG if settings.log_level == "DEBUG" else logging.NOTSET)


def _console_sink(message) -> None:
    sys.stderr.write(redact(str(message)))


def _json_sink(message) -> None:
    record = message.record
    extra = record["extra"]
    line: dict[str, Any] = {
        "ts": record["time"].astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record["level"].name,
        "msg": record["message"],
        "logger": extra.get("logger") or record["name"],
        "request_id": extra.get("request_id"),
    }
    for key, value in extra.items():
        if key not in _FORMATTED:
            line.setdefault(key, value)  # a bound field never overwrites ts, level, msg, ...
    if record["exception"] is not None:
        exc_type, exc_value, exc_traceback = record["exception"]
        line["exception"] = f"{exc_type.__name__ if exc_type else 'Exception'}: {exc_value}"
        line["traceback"] = "".join(traceback.format_exception(exc_type, exc_value, exc_traceback)).strip()
    sys.stderr.write(json.dumps(_redact_values(line), ensure_ascii=False, default=str) + "\n")


def _redact_values(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_values(_mask_field(k, v)) for k, v in value.items()}
    return value


def _mask_field(name: str, value: Any) -> Any:
    return "***" if value is not None and _SENSITIVE_KEY.search(name) else value


def _one_line(value: Any) -> str:
    """A value as console text that cannot start a forged line of its own."""
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


class InterceptHandler(logging.Handler):
    """Send a standard-library log record to loguru, keeping its logger name and level."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.bind(logger=record.name).opt(exception=record.exc_info, depth=6).log(level, record.getMessage())
