"""The database: one engine per process, configured by the app factory."""
from __future__ import annotations

from sqlalchemy import Engine, text

from common.backends import database_engine


class Database:
    """Holds this process's engine; gunicorn workers each configure their own after forking."""

    def __init__(self) -> None:
        self._engine: Engine | None = None

    def configure(self, *, url: str) -> None:
        if self._engine is not None:
            self._engine.dispose()
        self._engine = database_engine(url)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the database is not configured: create_app() configures it")
        return self._engine

    def ping(self) -> None:
        """Raise unless the database answers and holds our schema."""
        with self.engine.connect() as conn:
            # Touches a real table: `SELECT 1` would succeed on SQLite even with the file locked.
            conn.execute(text("SELECT 1 FROM users LIMIT 1"))


database = Database()
