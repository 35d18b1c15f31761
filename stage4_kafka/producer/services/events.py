"""The task events as the consumer reads them: JSON values and headers (the format consumer/events.py validates)."""
from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from common.models import TaskStatus
from common.timeutil import rfc3339

VERSION = 1
CREATED, CANCELED = "task.created", "task.canceled"
Headers = list[tuple[str, bytes]]


def created(*, task: dict[str, Any], user_id: uuid.UUID, idempotency: dict[str, Any] | None) -> bytes:
    """task.created: the accepted task (its public JSON plus the owner) and the idempotency record, if any."""
    return _encode({"event": CREATED, "version": VERSION, "occurred_at": task["created_at"],
                    "task": {**task, "user_id": str(user_id)}, "idempotency": idempotency})


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
