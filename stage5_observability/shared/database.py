"""The database as both processes use it: the engine's pool and timeouts, and what counts as an outage."""
from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import URL, make_url
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# What an unreachable, locked or overloaded database raises; integrity errors are not in this list.
OUTAGES = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
OPERATIONS = ("select", "insert", "update", "delete", "other")  # a statement's kind, for spans and metrics


def engine_options(url: str | URL) -> dict[str, Any]:
    """Either process's pool and timeouts: what a request or a batch may wait for, how many connections it keeps."""
    if make_url(url).get_backend_name() == "sqlite":
        # A locked file waits this long, then fails fast instead of hanging a request.
        return {"connect_args": {"timeout": 2}, "pool_pre_ping": True}
    return {
        # Fail a dead server's connect in 3 s, and a hung query in 10 s, instead of holding a worker thread.
        "connect_args": {"connect_timeout": 3, "read_timeout": 10, "write_timeout": 10},
        # A pooled connection the server dropped (restart, wait_timeout) is replaced, not handed to a request.
        "pool_pre_ping": True,
        # Keep a connection per worker thread (gunicorn.conf.py: threads = 8): overflow connections are
        # closed on return, so a pool smaller than the thread count reconnects on every busy request.
        "pool_size": 10,
        "max_overflow": 5,
    }


def max_connections(url: str | URL) -> int:
    """How many connections one engine of engine_options() lends at once (SQLAlchemy's pool: 5 + 10 by default)."""
    options = engine_options(url)
    return options.get("pool_size", 5) + options.get("max_overflow", 10)


@functools.lru_cache(maxsize=512)  # an app sends the same few compiled statements again and again
def statement_operation(statement: str) -> str:
    """select, insert, update, delete or other: the statement's first word, as a label."""
    word = statement.lstrip().split(None, 1)[0].lower() if statement.strip() else ""
    return word if word in OPERATIONS else "other"
