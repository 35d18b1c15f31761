"""The producer service: `create_app()` is the application factory gunicorn serves; `close_app()` undoes it."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from . import router
from .config import load_config
from .runtime import Runtime


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: configuration, then its runtime (every dependency, in one place), then routes."""
    app = Flask(__name__)
    app.config.from_mapping(load_config())
    if overrides:
        app.config.update(overrides)
    app.extensions["runtime"] = Runtime.start(app.config)
    router.init_app(app)
    return app


def close_app(app: Flask) -> None:
    """Close what create_app() opened; gunicorn calls this in each worker as it exits.

    An app create_app() did not make has nothing to close: `make bench` serves a bare Flask app under
    the stage's gunicorn settings, this hook included.
    """
    if (runtime := app.extensions.pop("runtime", None)) is not None:
        runtime.close()
