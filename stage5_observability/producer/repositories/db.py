"""The database: one engine per app (per gunicorn worker), and the unit of work every service runs in."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, TypeVar

from loguru import logger
from prometheus_client import Counter
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from common.connections import database_engine, first_line
from common.errors import ServiceUnavailable

from ...shared.database import OUTAGES, PoolTimeout, engine_options

T = TypeVar("T")


class DatabaseUnavailable(ServiceUnavailable):
    detail = "The database is unavailable; retry later."


class Database:
    """An app's engines and sessions, built by its runtime: in each gunicorn worker, after the fork."""

    def __init__(self, *, url: str, pool_timeouts: Counter) -> None:
        self.engine: Engine = database_engine(url, **engine_options(url))
        self.pool_timeouts = pool_timeouts  # checkouts that waited the pool's timeout in vain: the pool is too small
        # Every 202 asks whether the token's user exists: on a pool of its own in autocommit, that is one
        # round trip, where a session adds the pre-ping and the rollbacks on close and on return.
        self._reads = database_engine(url, **{**engine_options(url), "pool_pre_ping": False},
                                      isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True)
        logger.info("database configured", url=self.engine.url.render_as_string(hide_password=True))
        # Services hand loaded rows to handlers after commit; expiring them would reload per attribute.
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def engines(self) -> tuple[Engine, Engine]:
        """The unit-of-work engine and the autocommit reads' engine, for the runtime to instrument."""
        return self.engine, self._reads

    def close(self) -> None:
        """Close every pooled connection of both engines; a later checkout would open a new one."""
        self.engine.dispose()
        self._reads.dispose()

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session whose work is rolled back unless the caller commits it.

        A database that cannot be reached surfaces as DatabaseUnavailable (503 with Retry-After),
        never as a 500.
        """
        session = self._sessions()
        try:
            yield session
        except OUTAGES as exc:
            self._unavailable(exc)
        finally:
            # close() rolls back whatever was not committed, and (unlike rollback()) leaves the
            # loaded objects readable, so services can return them.
            session.close()

    def autocommit_read(self, read: Callable[[Connection], T]) -> T:
        """Run a read-only `read` outside any transaction, in one round trip; 503 if the database is down.

        Without a pre-ping, a pooled connection the server dropped (a restart) fails its statement;
        SQLAlchemy then discards the pool's older connections, and the read is tried once more.
        """
        dropped = retry_if_exception(lambda exc: isinstance(exc, DBAPIError) and exc.connection_invalidated)
        try:
            for attempt in Retrying(stop=stop_after_attempt(2), retry=dropped, reraise=True):
                with attempt, self._reads.connect() as connection:
                    return read(connection)
        except OUTAGES as exc:
            self._unavailable(exc)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _unavailable(self, exc: Exception) -> NoReturn:
        if isinstance(exc, PoolTimeout):
            self.pool_timeouts.inc()
        logger.warning("database unavailable", error=first_line(exc))
        raise DatabaseUnavailable(retry_after=2) from exc

    def ping(self) -> None:
        """Raise unless the database answers."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

