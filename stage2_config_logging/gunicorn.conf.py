"""Gunicorn settings for this stage; `make stageN`, the tests and `make bench` all use them."""
import importlib
import os
from pathlib import Path

from loguru import logger

# The stage package this file belongs to, whatever its folder is called (a learner's copy too).
_producer = f"{Path(__file__).resolve().parent.name}.producer"
# Settings are checked here, in the master, before any worker starts: a missing or bad one stops
# the start with exit code 2 and one line per problem, instead of a worker traceback per worker.
settings = importlib.import_module(f"{_producer}.config").settings_or_exit()
importlib.import_module(f"{_producer}.logs").configure(settings)
logger.info("starting", **settings.safe_dump())
# The app's code (create_app() imports it), loaded once here: every worker inherits it across the fork.
importlib.import_module(f"{_producer}.router")
importlib.import_module(f"{_producer}.runtime")

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# Threads let one worker overlap requests that wait on the database; two processes use both cores.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 30
graceful_timeout = 10
keepalive = 5
# The longest request line gunicorn takes (its default, 4094, would refuse a legal 512-character
# cursor once percent-encoded, with an HTML 414 outside the contract).
limit_request_line = 8190
# The app writes its own request log (producer/logs.py); gunicorn's access log would duplicate it.
accesslog = None
errorlog = "-"
# gunicorn's control socket lives at one path per user; several instances (tests, bench) would fight over it.
control_socket_disable = True
logger_class = f"{_producer}.logs.GunicornLogger"
loglevel = settings.log_level.lower()


def worker_exit(server, worker):  # noqa: ARG001 - gunicorn hook signature
    # Runs in the worker as it exits: its app's pooled connections are closed, not dropped with the process.
    app = getattr(worker, "wsgi", None)  # absent if the app failed to load
    if app is not None:
        importlib.import_module(_producer).close_app(app)
    logger.info("worker stopped", pid=worker.pid)


def on_exit(server):  # noqa: ARG001 - gunicorn hook signature
    logger.info("shutdown complete")
