"""The database: one engine per app (per gunicorn worker), and the unit of work every service runs in."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loguru import logger
from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from common.connections import database_engine, first_line
from common.errors import ServiceUnavailable

# What an unreachable, locked or overloaded database raises; integrity errors are not in this list.
_OUTAGES = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


def engine_options(url: str) -> dict[str, Any]:
    """This service's pool and timeouts: what a request may wait for, and how many connections it keeps."""
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


class DatabaseUnavailable(ServiceUnavailable):
    detail = "The database is unavailable; retry later."


class Database:
    """An app's engine and its sessions, built by its runtime: in each gunicorn worker, after the fork."""

    def __init__(self, *, url: str) -> None:
        self.engine: Engine = database_engine(url, **engine_options(url))
        logger.info("database configured", url=self.engine.url.render_as_string(hide_password=True))
        # Services hand loaded rows to handlers after commit; expiring them would reload per attribute.
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        """Close every pooled connection; a later checkout would open a new one."""
        self.engine.dispose()

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session whose work is rolled back unless the caller commits it.

        A database that cannot be reached surfaces as DatabaseUnavailable (503 with Retry-After),
        never as a 500.
        """
        session = self._sessions()
        try:
            yield session
        except _OUTAGES as exc:
            logger.warning("database unavailable", error=first_line(exc))
            raise DatabaseUnavailable(retry_after=2) from exc
        finally:
            # close() rolls back whatever was not committed, and (unlike rollback()) leaves the
            # loaded objects readable, so services can return them.
            session.close()

    def ping(self) -> None:
        """Raise unless the database answers."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

