"""Idempotency-Key rules: check the key, claim it for one request, replay its answer, or refuse with 409/422.

Order of lookup: the Redis record, then the idempotency_keys row (Redis may have lost its data),
then a claim. `Idempotency.guard()` holds the key around one create: the answer replaces the claim
when the create succeeds, and a create that fails gives the key back, so a 503 stores nothing.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from common.errors import IdempotencyKeyInUse, IdempotencyKeyMismatch, ServiceUnavailable, ValidationFailed
from common.models import Task
from common.timeutil import rfc3339, utcnow

from ..repositories import idempotency as records
from ..repositories.cache import CacheSession, document, from_document
from ..repositories.db import Database

HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x20-\x7e]{1,255}")  # 1-255 printable ASCII


@dataclass(frozen=True)
class Replay:
    status_code: int
    task: Task  # the task the first request was answered with


@dataclass(frozen=True)
class Claim:
    user_id: uuid.UUID
    key: str
    request_hash: str
    token: str
    task: Task | None = None  # what an earlier attempt with this key and body may have published


def check_key(raw: str | None) -> str | None:
    """The header's key, None when absent; 400 VALIDATION_FAILED unless it is 1-255 printable ASCII."""
    if raw is None:
        return None
    if not _KEY.fullmatch(raw):
        raise ValidationFailed(errors=[{"field": HEADER, "message": "must be 1-255 printable ASCII characters"}])
    return raw


def request_hash(body: dict[str, Any]) -> str:
    """sha256 of the validated body's canonical JSON: key order and spacing do not make another request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class KeyGuard:
    """One create's hold on its Idempotency-Key (none without a key): a replay to answer, or a claim to settle."""

    def __init__(self, rules: Idempotency, *, replay: Replay | None = None, claim: Claim | None = None) -> None:
        self.rules, self.replay, self.claim = rules, replay, claim
        self.answer: tuple[int, Task] | None = None

    @property
    def earlier_task(self) -> Task | None:
        """What an earlier attempt with this key and body may have published: this one publishes it again."""
        return self.claim.task if self.claim else None

    def record(self, *, status_code: int, task: Task) -> dict[str, Any] | None:
        """The event's `idempotency` member for this answer (None without a key); kept as the key's answer."""
        if self.claim is None:
            return None
        self.answer = (status_code, task)
        return self.rules.event_record(self.claim, status_code=status_code, task=task)


class Idempotency:
    """The Idempotency-Key rules of one app: claims and answers in the request's Redis session, landed answers
    in the database."""

    def __init__(self, *, database: Database, ttl_seconds: int, in_flight_seconds: int) -> None:
        self.database = database
        self.ttl_seconds, self.in_flight_seconds = ttl_seconds, in_flight_seconds

    @contextmanager
    def guard(self, *, session: CacheSession, user_id: uuid.UUID, key: str | None,
              request: dict[str, Any]) -> Iterator[KeyGuard]:
        """Hold the key around one create: replay its answer, or claim it (409/422/503 as begin() raises).

        When the block ends normally, the recorded answer replaces the claim; when it raises (any error), the
        key is given back with the task it may have published, which a retry with the key publishes again.
        """
        outcome = None if key is None else self.begin(session=session, user_id=user_id, key=key,
                                                      request_hash=request_hash(request))
        guard = KeyGuard(self, replay=outcome if isinstance(outcome, Replay) else None,
                         claim=outcome if isinstance(outcome, Claim) else None)
        try:
            yield guard
        except BaseException:
            if guard.claim:
                self.abandon(guard.claim, session=session, task=guard.answer[1] if guard.answer else None)
            raise
        if guard.claim and guard.answer:
            status_code, task = guard.answer
            self.finish(guard.claim, session=session, status_code=status_code, task=task)

    def begin(self, *, session: CacheSession, user_id: uuid.UUID, key: str, request_hash: str) -> Replay | Claim:
        """Replay the key's answer, claim the key for this request, or raise 409/422 (503 without Redis)."""
        found = records.cached(session, user_id=user_id, key=key)
        if found is None and session.up:
            with self.database.unit_of_work() as db:
                found = records.landed(db, user_id=user_id, key=key, now=utcnow())
            if found is None:
                token = secrets.token_hex(8)
                taken = records.claim(session, user_id=user_id, key=key, request_hash=request_hash, token=token,
                                      ttl_seconds=self.in_flight_seconds)
                if taken:
                    return Claim(user_id, key, request_hash, token)
                # Another request claimed it between our read and our claim: answer as for its record.
                found = self._reread(session, user_id=user_id, key=key, request_hash=request_hash)
        if found is not None and found["state"] == records.UNSETTLED and session.up:
            token = secrets.token_hex(8)
            if records.take_over(session, user_id=user_id, key=key, found=found, request_hash=request_hash,
                                 token=token, ttl_seconds=self.in_flight_seconds):
                same = found["request_hash"] == request_hash  # another body is another request: a new task
                earlier = from_document(found["task"], user_id=user_id) if same and found["task"] else None
                return Claim(user_id, key, request_hash, token, earlier)
            found = self._reread(session, user_id=user_id, key=key, request_hash=request_hash)
        if not session.up:
            # Without Redis no claim can be taken, so two retries could both publish: refuse instead.
            raise ServiceUnavailable("The idempotency store is unavailable; retry later.", retry_after=1)
        return self._answer(found, user_id=user_id, request_hash=request_hash)

    def _reread(self, session: CacheSession, *, user_id: uuid.UUID, key: str, request_hash: str) -> records.Record:
        """The key's record after another request changed it under us; gone already, it was in flight (409)."""
        return records.cached(session, user_id=user_id, key=key) or {"state": records.IN_FLIGHT,
                                                                    "request_hash": request_hash}

    def _answer(self, found: records.Record, *, user_id: uuid.UUID, request_hash: str) -> Replay:
        if found["request_hash"] != request_hash:
            raise IdempotencyKeyMismatch()
        if found["state"] != records.DONE:
            # The first request answers within PUBLISH_ATTEMPTS x PUBLISH_TIMEOUT_MS; a second is a fair wait.
            raise IdempotencyKeyInUse(retry_after=1)
        return Replay(found["status_code"], from_document(found["body"], user_id=user_id))

    def event_record(self, claim: Claim, *, status_code: int, task: Task) -> dict[str, Any]:
        """The `idempotency` member of the task.created event: what the consumer lands in idempotency_keys."""
        expires_at = utcnow() + timedelta(seconds=self.ttl_seconds)
        return {"key": claim.key, "request_hash": claim.request_hash, "status_code": status_code,
                "response_body": document(task), "expires_at": rfc3339(expires_at)}

    def finish(self, claim: Claim, *, session: CacheSession, status_code: int, task: Task) -> None:
        """After the ack: the answer replaces the claim (best effort: the consumer lands it in the table too)."""
        records.store_answer(session, user_id=claim.user_id, key=claim.key,
                             request_hash=claim.request_hash, status_code=status_code, body=document(task),
                             ttl_seconds=self.ttl_seconds)

    def abandon(self, claim: Claim, *, session: CacheSession, task: Task | None) -> None:
        """After a failed create (a 503, or any error): the key is free again, and a retry with the same body
        publishes this same task again (if the session still answers: Redis down, the claim expires instead).

        The 503 may follow a timeout, and a timed-out message may still have been written (sent, but not
        acknowledged in time): republishing the same task id lets the consumer land it at most once.
        """
        records.unsettle(session, user_id=claim.user_id, key=claim.key,
                         request_hash=claim.request_hash, token=claim.token, task=document(task) if task else None,
                         ttl_seconds=self.ttl_seconds)

