"""The producer service: `create_app()` is the application factory gunicorn serves; `close_app()` undoes it."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from .config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: settings, then its runtime (every dependency, in one place), then routes."""
    # Imported here, as Flask's tutorial does: gunicorn's master imports `producer.config` to check the
    # settings, and a start refused for a bad variable then never loads Flask and the layers. Once the
    # settings pass, gunicorn.conf.py imports them for every worker to inherit.
    from flask import Flask
    from loguru import logger

    from . import logs, router
    from .config import load_settings
    from .runtime import Runtime

    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.update(DEBUG=settings.debug, MAX_CONTENT_LENGTH=64 * 1024)  # 413 past 64 KiB of body
    app.extensions["runtime"] = Runtime.start(settings)
    logs.init_app(app, settings)
    router.init_app(app)
    logger.info("app ready", profile=settings.app_env)
    return app


def close_app(app: Flask) -> None:
    """Close what create_app() opened; gunicorn calls this in each worker as it exits.

    An app create_app() did not make has nothing to close: `make bench` serves a bare Flask app under
    the stage's gunicorn settings, this hook included.
    """
    if (runtime := app.extensions.pop("runtime", None)) is not None:
        runtime.close()
