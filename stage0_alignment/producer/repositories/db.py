"""The database engine, one per process, created from the app's configuration."""
from __future__ import annotations

from flask import Flask, current_app
from sqlalchemy import Engine, text

from common.backends import database_engine


def init_app(app: Flask) -> None:
    """Create this process's engine; gunicorn workers each call this after forking."""
    app.extensions["db_engine"] = database_engine(app.config["DATABASE_URL"])


def engine() -> Engine:
    return current_app.extensions["db_engine"]


def ping() -> None:
    """Raise unless the database answers and holds our schema."""
    with engine().connect() as conn:
        # Touches a real table: `SELECT 1` would succeed on SQLite even with the file locked.
        conn.execute(text("SELECT 1 FROM users LIMIT 1"))
