"""Gunicorn settings for this stage; `make stageN`, the tests and `make bench` all use them."""
import importlib
import os
from pathlib import Path

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
# No access log: a line per request on stderr costs throughput and buries the warnings; what a
# request log records is the application's decision, not the server's.
accesslog = None
errorlog = "-"
# gunicorn's control socket lives at one path per user; several instances (tests, bench) would fight over it.
control_socket_disable = True
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "warning")


def worker_exit(server, worker):  # noqa: ARG001 - gunicorn hook signature
    # Runs in the worker as it exits: its app's pooled connections are closed, not dropped with the process.
    app = getattr(worker, "wsgi", None)  # absent if the app failed to load
    if app is not None:
        importlib.import_module(f"{Path(__file__).resolve().parent.name}.producer").close_app(app)
