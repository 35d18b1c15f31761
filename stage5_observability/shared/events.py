"""The task events: one format, with its encoder (the producer's) and its decoder (the consumer's) side by side.

A message's value is one JSON object: {"event": "task.created" | "task.canceled", "version": 1,
"occurred_at", "task": {...}, ["idempotency": {...} | null]}; its key is the task id, and its headers
say the event type, the content type and the request id. decode() checks everything encode wrote and
says in one line why a message is poison.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.ids import parse_uuid
from common.models import Task, TaskStatus
from common.timeutil import rfc3339

VERSION = 1
CREATED, CANCELED = "task.created", "task.canceled"
Headers = list[tuple[str, bytes]]


def created(*, task: Task, idempotency: dict[str, Any] | None) -> bytes:
    """task.created: the accepted task (every column of its row) and the idempotency record, if any."""
    return _encode({"event": CREATED, "version": VERSION, "occurred_at": rfc3339(task.created_at),
                    "task": {"id": str(task.id), "type": task.type, "payload": task.payload, "priority": task.priority,
                             "status": task.status, "created_at": rfc3339(task.created_at),
                             "updated_at": rfc3339(task.updated_at), "user_id": str(task.user_id)},
                    "idempotency": idempotency})


def canceled(*, task_id: uuid.UUID, user_id: uuid.UUID, at: datetime) -> bytes:
    """task.canceled: only what the consumer's conditional UPDATE needs."""
    return _encode({"event": CANCELED, "version": VERSION, "occurred_at": rfc3339(at),
                    "task": {"id": str(task_id), "user_id": str(user_id), "status": TaskStatus.CANCELED.value,
                             "updated_at": rfc3339(at)}})


def headers(event_type: str, *, request_id: str | None) -> Headers:
    """The headers every event carries; the request id ties the consumer's log lines to the request's."""
    return [("event-type", event_type.encode()), ("content-type", b"application/json"),
            ("request-id", (request_id or "").encode())]


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# Decoding: what the consumer reads off the wire.

_TYPE = re.compile(r"[a-z0-9_.-]{1,64}")  # the API's rule for a task type (producer/handlers/schemas.py)
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_KINDS = {str: "a string", int: "an integer", dict: "an object"}


class Poison(ValueError):
    """The message can never land as it is: retrying cannot help, only a fix and a replay."""


@dataclass(frozen=True)
class TaskCreated:
    """A new PENDING task: the tasks row, and the idempotency_keys row if the request carried a key."""

    row: dict[str, Any]
    idempotency: dict[str, Any] | None


@dataclass(frozen=True)
class TaskCanceled:
    task_id: uuid.UUID
    user_id: uuid.UUID
    updated_at: datetime


Event = TaskCreated | TaskCanceled


def decode(key: bytes | None, value: bytes | None) -> Event:
    """The event a message carries; raise Poison naming the first problem."""
    try:
        document = json.loads(value or b"", parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Poison(f"undecodable: not UTF-8 JSON ({exc})") from None
    if not isinstance(document, dict):
        raise Poison("invalid event: not a JSON object")
    name, version = document.get("event"), document.get("version")
    if name not in (CREATED, CANCELED):
        raise Poison(f"invalid event: unknown event {name!r}")
    if version != VERSION or isinstance(version, bool):
        raise Poison(f"invalid event: unsupported version {version!r} of {name}")
    _time(document, "occurred_at", "occurred_at")
    task = document.get("task")
    if not isinstance(task, dict):
        raise Poison("invalid event: task must be an object")
    task_id = _uuid(task, "id")
    # The key is what orders a task's events (one partition per task): a message keyed otherwise breaks that.
    if key != str(task_id).encode():
        raise Poison(f"invalid event: the message key {key!r} is not task.id")
    return _created(document, task, task_id) if name == CREATED else _canceled(task, task_id)


def _created(document: dict[str, Any], task: dict[str, Any], task_id: uuid.UUID) -> TaskCreated:
    user_id = _uuid(task, "user_id")
    type_ = _field(task, "type", str)
    if not _TYPE.fullmatch(type_):
        raise Poison("invalid event: task.type must match [a-z0-9_.-]{1,64}")
    priority = _field(task, "priority", int)
    if not 0 <= priority <= 9:
        raise Poison(f"invalid event: task.priority {priority} is outside 0-9")
    if task.get("status") != "PENDING":
        raise Poison(f"invalid event: a created task must be PENDING, not {task.get('status')!r}")
    row = {"id": task_id, "user_id": user_id, "type": type_, "payload": _field(task, "payload", dict),
           "priority": priority, "status": "PENDING", "created_at": _time(task, "created_at"),
           "updated_at": _time(task, "updated_at")}
    return TaskCreated(row, _idempotency(document.get("idempotency"), row))


def _idempotency(record: Any, row: dict[str, Any]) -> dict[str, Any] | None:
    if record is None:
        return None
    if not isinstance(record, dict):
        raise Poison("invalid event: idempotency must be an object or null")
    key, request_hash = _field(record, "key", str, "idempotency."), _field(record, "request_hash", str, "idempotency.")
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise Poison("invalid event: idempotency.key must be 1-255 printable ASCII characters")
    if not _SHA256_HEX.fullmatch(request_hash):
        raise Poison("invalid event: idempotency.request_hash must be 64 lower-case hex digits")
    return {"user_id": row["user_id"], "idem_key": key, "request_hash": request_hash, "task_id": row["id"],
            "status_code": _field(record, "status_code", int, "idempotency."),
            "response_body": _field(record, "response_body", dict, "idempotency."),
            "created_at": row["created_at"], "expires_at": _time(record, "expires_at", "idempotency.expires_at")}


def _canceled(task: dict[str, Any], task_id: uuid.UUID) -> TaskCanceled:
    if task.get("status") != "CANCELED":
        raise Poison(f"invalid event: a canceled task must be CANCELED, not {task.get('status')!r}")
    return TaskCanceled(task_id, _uuid(task, "user_id"), _time(task, "updated_at"))


def _field(parent: dict[str, Any], name: str, kind: type, prefix: str = "task.") -> Any:
    value = parent.get(name)
    # bool is an int to Python, never to this format.
    if not isinstance(value, kind) or isinstance(value, bool):
        state = "is missing" if value is None else f"must be {_KINDS[kind]}"
        raise Poison(f"invalid event: {prefix}{name} {state}")
    return value


def _uuid(task: dict[str, Any], name: str) -> uuid.UUID:
    parsed = parse_uuid(task.get(name))
    if parsed is None:
        raise Poison(f"invalid event: task.{name} must be a canonical UUID")
    return parsed


def _time(parent: dict[str, Any], name: str, label: str | None = None) -> datetime:
    label = label or f"task.{name}"
    value = parent.get(name)
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise Poison(f"invalid event: {label} must be an RFC 3339 time with an offset")
    return parsed


def _no_constants(name: str) -> None:
    # NaN and Infinity are not JSON: Python would accept them, the database's JSON column would not.
    raise ValueError(f"{name} is not JSON")
