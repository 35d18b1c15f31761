"""The producer service: `create_app()` is the application factory gunicorn serves."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from common.security import Passwords

from . import router
from .config import load_config
from .repositories import db


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: configuration, then extensions, then routes."""
    app = Flask(__name__)
    app.config.from_mapping(load_config())
    if overrides:
        app.config.update(overrides)
    db.database.configure(url=app.config["DATABASE_URL"])
    app.extensions["passwords"] = Passwords(app.config["PASSWORD_HASH_PROFILE"])
    router.init_app(app)
    return app
