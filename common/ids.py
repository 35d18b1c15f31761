"""UUIDv7 generation and the BINARY(16) column type that stores it."""
from __future__ import annotations

import os
import threading
import time
import uuid

from sqlalchemy import LargeBinary
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """Return a UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a counter, then random bits.

    Within one process, ids are strictly increasing even inside one millisecond (the 12-bit
    ``rand_a`` field is a counter seeded at random, as RFC 9562 section 6.2 method 1 allows),
    so a new row always lands at the right-hand edge of the clustered index.
    """
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms, _counter = now_ms, int.from_bytes(os.urandom(2), "big") & 0x7FF
        else:
            # Same millisecond (or the clock stepped back): keep the order by counting on.
            _counter += 1
            if _counter > 0xFFF:
                _last_ms, _counter = _last_ms + 1, 0
        ms, counter = _last_ms, _counter
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76 | counter << 64
    value |= 0b10 << 62 | int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    return uuid.UUID(int=value)


def uuid7_time_ms(value: uuid.UUID) -> int:
    """Return the Unix time in milliseconds embedded in a UUIDv7."""
    return value.int >> 80


def parse_uuid(text: str) -> uuid.UUID | None:
    """Parse the canonical 36-character form; return None for anything else."""
    if not isinstance(text, str) or len(text) != 36:
        return None
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return None
    return parsed if str(parsed) == text.lower() else None


class BinaryUUID(TypeDecorator[uuid.UUID]):
    """A UUID stored as 16 raw bytes: BINARY(16) on MySQL/MariaDB, BLOB on SQLite.

    MariaDB's native UUID type is deliberately not used: it reorders the bytes, which breaks
    the portability of the raw column between MySQL, MariaDB and SQLite.
    """

    impl = LargeBinary(16)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.BINARY(16))
        return dialect.type_descriptor(LargeBinary(16))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, uuid.UUID):
            return value.bytes
        raise TypeError(f"BinaryUUID expects uuid.UUID, got {type(value).__name__}")

    def process_result_value(self, value, dialect):
        return None if value is None else uuid.UUID(bytes=bytes(value))
