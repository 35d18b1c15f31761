"""What a service process needs from common/ to open its connections and describe them in a log line.

common/backends.py finds or starts the backends for the runner and the tests (redis-server, the
mock cluster, the probes); a service only connects, so it imports this module instead, and its
process never loads what starting a backend needs.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import Engine, create_engine, event, make_url


def database_engine(url: str, **kwargs) -> Engine:
    """Create an engine; `kwargs` (pool, pre-ping, timeouts: a stage's tuning) go to create_engine.

    What is added here is not tuning but correctness every process needs, the services, the
    runner and the test harness alike: SQLite enforcing the foreign keys the DDL declares.
    """
    engine = create_engine(url, **kwargs)
    if make_url(url).get_backend_name() == "sqlite":
        event.listen(engine, "connect", _enforce_sqlite_foreign_keys)
    return engine


def _enforce_sqlite_foreign_keys(dbapi_connection, connection_record) -> None:  # noqa: ARG001
    # SQLite checks foreign keys only when each connection asks it to.
    dbapi_connection.execute("PRAGMA foreign_keys = ON")


def mask_url(url: str) -> str:
    """Replace the password of a URL with ***."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def first_line(exc: BaseException) -> str:
    """A one-line description of an exception, for humans."""
    text_ = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text_[0] if text_ else ''}".rstrip(": ")
