"""Gunicorn settings for this stage; `make stageN`, the tests and `make bench` all use them."""
import importlib
import os
import shutil
import tempfile
from pathlib import Path

from loguru import logger

# The stage package this file belongs to, whatever its folder is called (a learner's copy too).
_producer = f"{Path(__file__).resolve().parent.name}.producer"
# Settings are checked here, in the master, before any worker starts: a missing or bad one stops
# the start with exit code 2 and one line per problem, instead of a worker traceback per worker.
settings = importlib.import_module(f"{_producer}.config").settings_or_exit()
importlib.import_module(f"{_producer}.logs").configure(settings)
logger.info("starting", **settings.safe_dump())


def _metrics_directory() -> tuple[Path, bool]:
    """PROMETHEUS_MULTIPROC_DIR, emptied (or a new temporary one); and whether this server made it.

    Set here, before the app's code imports prometheus_client, which reads it once at import. Empty, because
    files of an earlier run would be summed into this one's counters.
    """
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="producer-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path, not given


metrics_directory, made_metrics_directory = _metrics_directory()
# The app's code (create_app() imports it), loaded once here: every worker inherits it across the fork.
importlib.import_module(f"{_producer}.router")
importlib.import_module(f"{_producer}.runtime")
_metrics = importlib.import_module(f"{_producer}.metrics")

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# Threads let one worker overlap requests that wait on the database; two processes use both cores.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 30
# A worker is replaced after this many requests (0: never), as a guard against slow leaks; /metrics keeps
# its counts (metrics.retire_worker).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
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


def child_exit(server, worker):  # noqa: ARG001 - gunicorn hook signature
    # Runs in the master once a worker is gone (stopped, restarted by max_requests, or killed).
    _metrics.retire_worker(worker.pid)


def on_exit(server):  # noqa: ARG001 - gunicorn hook signature
    if made_metrics_directory:
        shutil.rmtree(metrics_directory, ignore_errors=True)
    logger.info("shutdown complete")
