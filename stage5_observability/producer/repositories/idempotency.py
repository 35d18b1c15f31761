"""Idempotency records: Redis holds claims and answers (the fast path); the idempotency_keys table holds the
answers the consumer landed, so a replay still answers after Redis lost its data.

Redis key `idem:v1:{user_id}:{sha256(Idempotency-Key)}` (hashed: a client's key is up to 255 bytes of anything
printable), value JSON: {"state": "in-flight", "request_hash", "token"} while a request holds the key,
{"state": "done", "request_hash", "status_code", "body"} once it was answered, and
{"state": "unsettled", "request_hash", "task"} after a 503 whose message the broker may still have
written (a timeout cannot tell "never sent" from "sent, not acknowledged"): a retry with the key
publishes that same task again, so the consumer lands it at most once.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.models import IdempotencyKey

from .cache import CacheSession

IN_FLIGHT, DONE, UNSETTLED = "in-flight", "done", "unsettled"
Record = dict[str, Any]


def record_key(user_id: uuid.UUID, key: str) -> str:
    return f"idem:v1:{user_id}:{hashlib.sha256(key.encode('ascii')).hexdigest()}"


def cached(session: CacheSession, *, user_id: uuid.UUID, key: str) -> Record | None:
    """The Redis record of the key, or None (also when Redis failed: check `session.up`)."""
    found = session.get(record_key(user_id, key))
    return None if found is None else json.loads(found)


def claim(session: CacheSession, *, user_id: uuid.UUID, key: str, request_hash: str, token: str,
          ttl_seconds: int) -> bool | None:
    """Take the key for one request (SET NX EX); None if Redis failed."""
    return session.claim(record_key(user_id, key), _in_flight(request_hash, token), ttl_seconds=ttl_seconds)


def unsettle(session: CacheSession, *, user_id: uuid.UUID, key: str, request_hash: str, token: str,
             task: dict[str, Any] | None, ttl_seconds: int) -> None:
    """Give the key back after a 503, with the task we tried to publish (if any): replace our claim, and only ours."""
    value = _encode({"state": UNSETTLED, "request_hash": request_hash, "task": task})
    session.swap(record_key(user_id, key), _in_flight(request_hash, token), value, ttl_seconds=ttl_seconds)


def take_over(session: CacheSession, *, user_id: uuid.UUID, key: str, found: Record, request_hash: str,
              token: str, ttl_seconds: int) -> bool | None:
    """Claim a key whose last request got a 503 (only if its record is still the one we read); None if Redis failed."""
    return session.swap(record_key(user_id, key), _encode(found), _in_flight(request_hash, token),
                        ttl_seconds=ttl_seconds)


def store_answer(session: CacheSession, *, user_id: uuid.UUID, key: str, request_hash: str, status_code: int,
                 body: dict[str, Any], ttl_seconds: int) -> None:
    """Replace the claim with the answer, for IDEMPOTENCY_TTL_SECONDS."""
    value = _encode({"state": DONE, "request_hash": request_hash, "status_code": status_code, "body": body})
    session.set(record_key(user_id, key), value, ttl_ms=ttl_seconds * 1000)


def landed(session: Session, *, user_id: uuid.UUID, key: str, now: datetime) -> Record | None:
    """The answer the consumer landed in idempotency_keys, as a done record, unless it expired."""
    row = session.scalars(select(IdempotencyKey).where(
        IdempotencyKey.user_id == user_id, IdempotencyKey.idem_key == key, IdempotencyKey.expires_at > now,
    )).one_or_none()
    if row is None or row.status_code is None or row.response_body is None:
        return None
    return {"state": DONE, "request_hash": row.request_hash, "status_code": row.status_code,
            "body": row.response_body}


def _in_flight(request_hash: str, token: str) -> str:
    """The claim of one request, as stored: a swap finds it only if it is still this very claim."""
    return _encode({"state": IN_FLIGHT, "request_hash": request_hash, "token": token})


def _encode(record: Record) -> str:
    # Sorted and compact: release() compares the stored text with the text it would write.
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
