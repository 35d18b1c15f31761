"""The producer service: `create_app()` is the application factory gunicorn serves."""
from __future__ import annotations

from flask import Flask
from loguru import logger

from common.security import Passwords

from . import logs, router
from .config import Settings, load_settings
from .repositories import db
from .repositories.cache import cache
from .services import task_cache


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: settings, then extensions, then routes."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.update(DEBUG=settings.debug, MAX_CONTENT_LENGTH=64 * 1024)  # 413 past 64 KiB of body
    app.extensions["settings"] = settings
    app.extensions["passwords"] = Passwords(settings.password_hash_profile)
    db.database.configure(url=settings.database_url)
    cache.configure(url=settings.redis_url, timeout_ms=settings.redis_timeout_ms)
    task_cache.configure(settings=settings)
    logs.init_app(app, settings)
    router.init_app(app)
    logger.info("app ready", profile=settings.app_env)
    return app
