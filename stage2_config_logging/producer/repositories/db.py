"""The database: one engine per process, and the unit of work every service runs in."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from loguru import logger
from sqlalchemy import Engine, text
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from common.backends import database_engine, first_line
from common.errors import ServiceUnavailable

# What an unreachable, locked or overloaded database raises; integrity errors are not in this list.
_OUTAGES = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


class DatabaseUnavailable(ServiceUnavailable):
    detail = "The database is unavailable; retry later."


class Database:
    """Holds this process's engine; gunicorn workers each configure their own after forking."""

    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    def configure(self, *, url: str) -> None:
        if self._engine is not None:
            self._engine.dispose()
        self._engine = database_engine(url)
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
        except _OUTAGES as exc:
            logger.warning("database unavailable", error=first_line(exc))
            raise DatabaseUnavailable(retry_after=2) from exc
        finally:
            # close() rolls back whatever was not committed, and (unlike rollback()) leaves the
            # loaded objects readable, so services can return them.
            session.close()

    def ping(self) -> None:
        """Raise unless the database answers and holds our schema."""
        with self.engine.connect() as conn:
            # Touches a real table: `SELECT 1` would succeed on SQLite even with the file locked.
            conn.execute(text("SELECT 1 FROM users LIMIT 1"))


database = Database()
