"""The composition root: what this process's requests use, built once with the app and closed with it.

create_app() starts one Runtime and keeps it in `app.extensions["runtime"]`; handlers hand its parts
to the services, which take what they use as keyword arguments. Nothing here is a module global, so
two apps in one process (a test, say) each have their own database and settings.
"""
from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app

from common.security import Passwords

from .repositories.db import Database
from .services.auth import TokenPolicy


@dataclass(frozen=True)
class Runtime:
    """This app's dependencies: each is built here, and only here; close() closes what start() opened."""

    database: Database
    passwords: Passwords
    tokens: TokenPolicy
    _opened: ExitStack = field(repr=False)  # what close() closes, last opened first

    @classmethod
    def start(cls, config: Mapping[str, Any]) -> Runtime:
        """Open the dependencies (in each gunicorn worker, after the fork: pools do not survive one).

        If one of them fails to open, those opened before it are closed again before the error propagates.
        """
        with ExitStack() as opened:
            database = opened.enter_context(closing(Database(url=config["DATABASE_URL"])))
            passwords = Passwords(config["PASSWORD_HASH_PROFILE"])
            tokens = TokenPolicy(secret=config["JWT_SECRET"], ttl=timedelta(seconds=config["ACCESS_TOKEN_TTL_SECONDS"]))
            opened_ok = opened.pop_all()  # all opened: from now on close() closes them, not this block
        return cls(database=database, passwords=passwords, tokens=tokens, _opened=opened_ok)

    def close(self) -> None:
        """Close every dependency start() opened, in reverse order; one that fails to close does not stop the rest."""
        self._opened.close()


def current() -> Runtime:
    """The runtime of the app serving this request."""
    return current_app.extensions["runtime"]
