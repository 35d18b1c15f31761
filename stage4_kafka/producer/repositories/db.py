"""The database: one engine per process, and the unit of work every service runs in."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from loguru import logger
from sqlalchemy import Connection, Engine, make_url, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from common.backends import database_engine, first_line
from common.errors import ServiceUnavailable

# What an unreachable, locked or overloaded database raises; integrity errors are not in this list.
OUTAGES = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
T = TypeVar("T")


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
    """Holds this process's engine; gunicorn workers each configure their own after forking."""

    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._reads: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    def configure(self, *, url: str) -> None:
        for engine in (self._engine, self._reads):
            if engine is not None:
                engine.dispose()
        self._engine = database_engine(url, **engine_options(url))
        # Every 202 asks whether the token's user exists: on a pool of its own in autocommit, that is one
        # round trip, where a session adds the pre-ping and the rollbacks on close and on return.
        self._reads = database_engine(url, **{**engine_options(url), "pool_pre_ping": False},
                                      isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True)
        logger.info("database configured", url=self._engine.url.render_as_string(hide_password=True))
        # Services hand loaded rows to handlers after commit; expiring them would reload per attribute.
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the database is not configured: create_app() configures it")
        return self._engine

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session whose work is rolled back unless the caller commits it.

        A database that cannot be reached surfaces as DatabaseUnavailable (503 with Retry-After),
        never as a 500.
        """
        if self._sessions is None:
            raise RuntimeError("the database is not configured: create_app() configures it")
        session = self._sessions()
        try:
            yield session
        except OUTAGES as exc:
            logger.warning("database unavailable", error=first_line(exc))
            raise DatabaseUnavailable(retry_after=2) from exc
        finally:
            # close() rolls back whatever was not committed, and (unlike rollback()) leaves the
            # loaded objects readable, so services can return them.
            session.close()

    def autocommit_read(self, read: Callable[[Connection], T]) -> T:
        """Run a read-only `read` outside any transaction, in one round trip; 503 if the database is down.

        Without a pre-ping, a pooled connection the server dropped (a restart) fails its statement;
        SQLAlchemy then discards the pool's older connections, and the read is tried once more.
        """
        if self._reads is None:
            raise RuntimeError("the database is not configured: create_app() configures it")
        dropped = retry_if_exception(lambda exc: isinstance(exc, DBAPIError) and exc.connection_invalidated)
        try:
            for attempt in Retrying(stop=stop_after_attempt(2), retry=dropped, reraise=True):
                with attempt, self._reads.connect() as connection:
                    return read(connection)
        except OUTAGES as exc:
            logger.warning("database unavailable", error=first_line(exc))
            raise DatabaseUnavailable(retry_after=2) from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    def ping(self) -> None:
        """Raise unless the database answers."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


database = Database()
