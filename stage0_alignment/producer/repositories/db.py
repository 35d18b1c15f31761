"""The database: one engine per process, configured by the app factory."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, make_url, text

from common.connections import database_engine


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


class Database:
    """Holds this process's engine; gunicorn workers each configure their own after forking."""

    def __init__(self) -> None:
        self._engine: Engine | None = None

    def configure(self, *, url: str) -> None:
        if self._engine is not None:
            self._engine.dispose()
        self._engine = database_engine(url, **engine_options(url))

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the database is not configured: create_app() configures it")
        return self._engine

    def ping(self) -> None:
        """Raise unless the database answers."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


database = Database()
